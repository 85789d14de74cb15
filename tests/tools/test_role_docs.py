"""tools/role_docs.py: argument_specs is the one description of a role's variables.

Each test builds a small repository (README, one role) in a temporary directory and runs the tool on it as
`./dev docs` and `./dev lint` do, so what is tested is the command, not a function behind it.
"""

import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "role_docs.py"

README = """# bundle

## Roles and their variables

### demo

Does a demo thing.

<!-- BEGIN role-vars demo -->
<!-- END role-vars demo -->

## Operating it

Run it.
"""

SPEC = """---
argument_specs:
  main: &main
    short_description: A demo role
    options:
      demo_port:
        type: int
        default: 8080
        description: Port the demo listens on.
      demo_peers:
        type: list
        elements: str
        required: true
        description:
          - Hosts it talks to.
          - One per line.
  validate: *main
"""

DEFAULTS = """---
# What each variable means: meta/argument_specs.yml.
demo_port: 8080
demo_peers: []
"""


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), "--root", str(root), *args], capture_output=True, text=True, check=False
    )


def check_fails(root: Path) -> str:
    """`--check` on ROOT fails (as `./dev lint` would); what it printed."""
    result = run(root, "--check")
    assert result.returncode == 1, result.stderr
    return result.stderr


def add_role(root: Path, name: str, spec: str, defaults: str) -> None:
    (root / "roles" / name / "meta").mkdir(parents=True)
    (root / "roles" / name / "defaults").mkdir(parents=True)
    (root / "roles" / name / "meta" / "argument_specs.yml").write_text(spec)
    (root / "roles" / name / "defaults" / "main.yml").write_text(defaults)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "README.md").write_text(README)
    add_role(tmp_path, "demo", SPEC, DEFAULTS)
    rendered = run(tmp_path)
    assert rendered.returncode == 0, rendered.stderr
    return tmp_path


def test_the_bundle_is_in_line() -> None:
    """The real tree: every role's README section, spec and defaults agree (what `./dev lint` runs)."""
    result = run(TOOL.parents[1], "--check")
    assert result.returncode == 0, result.stderr


def test_renders_every_variable_with_type_default_and_meaning(repo: Path) -> None:
    readme = (repo / "README.md").read_text()
    assert "- `demo_port` (int, default `8080`): Port the demo listens on." in readme
    assert "- `demo_peers` (list of str, **required**): Hosts it talks to.\n  One per line." in readme
    # Outside the markers nothing moved.
    assert readme.startswith(README.split("<!-- BEGIN", maxsplit=1)[0])
    assert readme.endswith("<!-- END role-vars demo -->\n\n## Operating it\n\nRun it.\n")
    assert run(repo, "--check").returncode == 0


def test_a_changed_description_makes_the_readme_stale_until_docs_runs(repo: Path) -> None:
    spec = repo / "roles/demo/meta/argument_specs.yml"
    spec.write_text(spec.read_text().replace("Port the demo listens on.", "Port of the demo."))

    stderr = check_fails(repo)
    assert "README.md: the variables of demo are not as their specs say: run ./dev docs" in stderr
    assert "Port the demo listens on." in (repo / "README.md").read_text(), "--check changed the README"

    assert run(repo).returncode == 0
    assert "Port of the demo." in (repo / "README.md").read_text()
    assert run(repo, "--check").returncode == 0


def test_a_hand_edit_inside_the_markers_is_stale(repo: Path) -> None:
    readme = repo / "README.md"
    readme.write_text(readme.read_text().replace("Port the demo listens on.", "Port (hand-edited)."))
    assert "run ./dev docs" in run(repo, "--check").stderr


def test_a_default_without_a_spec_fails(repo: Path) -> None:
    (repo / "roles/demo/defaults/main.yml").write_text(DEFAULTS + "demo_timeout: 5\n")
    stderr = check_fails(repo)
    assert "roles/demo/defaults/main.yml: demo_timeout has no spec in meta/argument_specs.yml" in stderr


def test_a_spec_without_a_description_fails(repo: Path) -> None:
    spec = repo / "roles/demo/meta/argument_specs.yml"
    spec.write_text(spec.read_text().replace("        description: Port the demo listens on.\n", ""))
    stderr = check_fails(repo)
    assert "roles/demo/meta/argument_specs.yml: demo_port has no description" in stderr


def test_a_default_that_differs_from_the_spec_fails(repo: Path) -> None:
    (repo / "roles/demo/defaults/main.yml").write_text(DEFAULTS.replace("8080", "8081"))
    stderr = check_fails(repo)
    assert (
        "roles/demo: demo_port defaults to 8080 in meta/argument_specs.yml but to 8081 in defaults/main.yml"
        in stderr
    )


def test_a_spec_default_missing_from_defaults_fails(repo: Path) -> None:
    (repo / "roles/demo/defaults/main.yml").write_text(DEFAULTS.replace("demo_port: 8080\n", ""))
    stderr = check_fails(repo)
    assert "demo_port has the default 8080 in its spec but none in defaults/main.yml" in stderr


def test_a_comment_explaining_a_default_fails(repo: Path) -> None:
    (repo / "roles/demo/defaults/main.yml").write_text(
        DEFAULTS.replace("demo_peers", "# the peers\ndemo_peers")
    )
    stderr = check_fails(repo)
    assert "roles/demo/defaults/main.yml:4: a comment among the values" in stderr


def test_a_new_role_gets_its_section_in_the_roles_chapter(repo: Path) -> None:
    add_role(
        repo,
        "extra",
        SPEC.replace("demo_", "extra_").replace("A demo role", "An extra role"),
        DEFAULTS.replace("demo_", "extra_"),
    )
    stderr = check_fails(repo)
    assert "the variables of extra are not as their specs say: run ./dev docs" in stderr

    assert run(repo).returncode == 0
    readme = (repo / "README.md").read_text()
    chapter = readme[readme.index("## Roles and their variables") : readme.index("## Operating it")]
    assert "### extra\n\nAn extra role\n\n<!-- BEGIN role-vars extra" in chapter
    assert "- `extra_port` (int, default `8080`): Port the demo listens on." in chapter
    assert run(repo, "--check").returncode == 0
