"""Config fields declared once (issue 21): defaults, validation and docs/config_fields.md
all come from the declarations (jaxdepth/papers/*/fields.py); these tests are derived
from the declarations too, so a new field is covered when it is declared."""

import os
import re
import shlex

import pytest

from jaxdepth import cli, configs
from jaxdepth.engine import registry
from jaxdepth.errors import ConfigError
from jaxdepth.tools import fields as fields_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMAS = fields_tool.schemas()
BY_NAME = {s.experiment: s for s in SCHEMAS}
ALL_FIELDS = [(s, f) for s in SCHEMAS for f in s.fields]


def _id(sf):
  return f"{sf[0].experiment}.{sf[1].name}"


def _set(config, name, value):
  *parents, leaf = name.split(".")
  node = config
  for p in parents:
    node = node[p]
  with node.ignore_type():
    node[leaf] = value


def test_docs_table_is_generated_from_the_declarations():
  with open(os.path.join(ROOT, "docs", "config_fields.md"), encoding="utf-8") as f:
    committed = f.read()
  assert committed == fields_tool.markdown(), (
      "docs/config_fields.md is stale: run `jaxdepth fields --write docs/config_fields.md`")
  for s in SCHEMAS:
    for f in s.fields:
      assert f"| `{f.name}` |" in fields_tool.markdown(s.experiment)


def test_declared_defaults_are_valid_and_are_what_the_configs_start_from():
  from jaxdepth.configs import bound, common
  for s in SCHEMAS:
    s.validate(s.defaults())
    assert s.defaults().experiment == s.experiment
  assert common.base().to_dict() == BY_NAME["collapse"].defaults().to_dict()
  # configs/bound.py still states its defaults (not migrated yet): they must agree.
  assert bound.get_config().to_dict() == BY_NAME["bound"].defaults().to_dict()
  assert repr(common.base()) == repr(BY_NAME["collapse"].defaults())  # types, order


def _packaged_configs():
  """(name, variant or None, loaded config) of every packaged config and variant
  whose experiment declares its fields."""
  out = []
  for entry in configs.catalog():
    for arg in (None, *(entry.variants or ())):
      c = configs.load(entry.name + (f":{arg}" if arg else ""))
      if c.get("experiment", "collapse") in BY_NAME:
        out.append((entry.name, arg, c))
  return out


def test_every_packaged_config_validates_and_starts_from_the_declared_defaults():
  found = _packaged_configs()
  for name, arg, c in found:
    try:
      BY_NAME[c.get("experiment", "collapse")].validate(c)
    except ConfigError as e:
      raise AssertionError(f"{name}:{arg}: {e}") from None
  # A config named after its experiment (lowrank/volume: lowrank.volume) is the
  # declared defaults, field for field (types and order too); its variants change some.
  named = {n for n, arg, c in found if arg is None and n.replace("/", ".") == c.experiment}
  for n, arg, c in found:
    if n in named and arg is None:
      assert repr(c) == repr(BY_NAME[c.experiment].defaults()), n
  declared = {s.experiment for s in SCHEMAS} - {"collapse"}  # collapse: common.base()
  assert {n.replace("/", ".") for n in named} == declared


def test_overrides_suggested_in_config_docstrings_validate(monkeypatch, tmp_path):
  """Each ``--config.FIELD=VALUE`` a packaged config's docstring suggests, applied to
  that config (placeholders in capitals, such as DIR, skipped)."""
  monkeypatch.chdir(tmp_path)
  n = 0
  for entry in configs.catalog():
    doc = open(entry.path, encoding="utf-8").read().split('"""')[1]
    for m in re.finditer(r"--config\.([\w.]+)=(\([^)]*\)|[^\s`,;)]+)", doc):
      if m.group(2).isupper():
        continue
      c = cli.load_config(entry.name, [m.group(0)])
      name = c.get("experiment", "collapse")
      if name in BY_NAME:
        BY_NAME[name].validate(c)
        n += 1
  assert n >= 5


@pytest.mark.parametrize("sf", [sf for sf in ALL_FIELDS if sf[1].choices is not None],
                         ids=_id)
def test_a_value_outside_the_choices_names_the_field_and_the_allowed_values(sf):
  schema, f = sf
  c = schema.defaults()
  _set(c, f.name, ("not_a_choice",) if f.kind == "strs" else "not_a_choice")
  with pytest.raises(ConfigError) as e:  # through the experiment, as `jaxdepth train`
    registry.get(schema.experiment).validate(c)
  msg = str(e.value)
  assert msg.startswith(f"config.{f.name}: "), msg
  assert "'not_a_choice'" in msg and all(str(a) in msg for a in f.allowed()), msg


_WRONG_TYPE = {"int": 1.5, "float": "x", "bool": "yes", "str": 3, "ints": ("a",),
               "floats": ("a",), "strs": "crop", "axis": "x", "dict": 3}


@pytest.mark.parametrize("sf", [sf for sf in ALL_FIELDS if sf[1].kind != "any"], ids=_id)
def test_a_value_of_the_wrong_type_or_range_names_the_field(sf):
  schema, f = sf
  c = schema.defaults()
  _set(c, f.name, _WRONG_TYPE[f.kind])
  with pytest.raises(ConfigError, match=rf"^config\.{re.escape(f.name)}: "):
    schema.validate(c)
  if f.low is not None and f.kind in ("int", "float", "ints", "floats", "axis"):
    below = f.low if f.low_open else f.low - 1
    c = schema.defaults()
    _set(c, f.name, (below,) if f.kind in ("ints", "floats") else below)
    with pytest.raises(ConfigError, match=rf"^config\.{re.escape(f.name)}: ") as e:
      schema.validate(c)
    assert f"{f.low:g}" in str(e.value).replace(".0", "")  # the bound is named


def test_unknown_field_suggests_the_nearest():
  c = configs.load("quickstart")
  with c.unlocked():
    c.num_seed = 4
  with pytest.raises(ConfigError, match=r"^config\.num_seed: unknown field; did you mean "
                                        r"'num_seeds'\? known fields: .*label_noise"):
    registry.get("collapse").validate(c)
  c = configs.load("quickstart")
  c.data.num_trian = 10
  with pytest.raises(ConfigError, match=r"^config\.data\.num_trian: unknown field; did "
                                        r"you mean 'num_train'\?"):
    registry.get("collapse").validate(c)
  c = configs.load("bound:tiny")
  c.label_noise = (0.1,)  # a collapse field: no close match among bound's
  with pytest.raises(ConfigError, match=r"^config\.label_noise: unknown field; known "):
    registry.get("bound").validate(c)
  c = configs.load("tiny")
  c.init = "kaimng"  # a misspelt choice gets a suggestion too
  with pytest.raises(ConfigError, match=r"did you mean 'kaiming'\? allowed: kaiming, "
                                        r"pytorch"):
    registry.get("collapse").validate(c)


def test_bad_value_on_the_command_line_is_one_line_before_any_compute(tmp_path, capsys):
  w = tmp_path / "w"
  assert cli.main(["train", "--config", "tiny", "--config.schedule=cosin",
                   "--workdir", str(w)]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err == ["jaxdepth: error: config.schedule: unknown value 'cosin'; did you mean "
                 "'cosine'? allowed: step, cosine, constant"]
  assert not w.exists()


def _documented_commands():
  """(file, argv after `jaxdepth train`, documented error or None) of every complete
  train command in the README and the minimal-depth docs."""
  out = []
  for path in ("README.md", "docs/minimal_depth.md"):
    lines = open(os.path.join(ROOT, path), encoding="utf-8").read().replace(
        "\\\n", " ").splitlines()
    for i, line in enumerate(lines):
      m = re.search(r"(?:^|\$ |`)jaxdepth train (--config [^`#\[]*)", line)
      if not m or "--workdir" not in m.group(1):
        continue
      argv = shlex.split(m.group(1))
      spec = argv[argv.index("--config") + 1]
      if spec in ("CONFIG", "example", "my_config.py", "quickstart:huge"):
        continue  # placeholders and the unknown-variant example
      nxt = lines[i + 1] if i + 1 < len(lines) else ""
      error = nxt[len("jaxdepth: error: "):] if nxt.startswith("jaxdepth: error: ") else None
      out.append((path, argv, error))
  return out


def test_documented_command_lines_still_parse_and_validate(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # the packaged configs, as a user outside the repo
  commands = _documented_commands()
  assert len(commands) >= 20 and any(e for _, _, e in commands)
  covered = set()
  for path, argv, error in commands:
    spec = argv[argv.index("--config") + 1]
    overrides = [a for a in cli.join_override_values(argv) if a.startswith("--config.")]
    try:
      c = cli.load_config(spec, overrides)
      name = c.get("experiment", "collapse")
      covered.add(name)
      if c.get("dataset") == "npz":  # the README's placeholder file: the rules only
        BY_NAME[name].validate(c)
      else:
        registry.get(name).validate(c)
    except ConfigError as e:
      assert error is not None and str(e) == error, (path, argv, str(e))
    else:
      assert error is None, (path, argv, "documented as an error, but validates")
  # Every experiment with declared fields has a documented command line checked here.
  assert {s.experiment for s in SCHEMAS} <= covered, covered


def test_fields_command_prints_the_tables(capsys, tmp_path):
  assert cli.main(["fields", "--experiment", "bound"]) == 0
  assert capsys.readouterr().out == BY_NAME["bound"].markdown()
  assert cli.main(["fields", "--write", str(tmp_path / "f.md")]) == 0
  assert (tmp_path / "f.md").read_text() == fields_tool.markdown()
  assert cli.main(["fields", "--experiment", "nosuch"]) == 2
  assert "allowed: " + ", ".join(s.experiment for s in SCHEMAS) in capsys.readouterr().err


def test_every_experiment_declares_its_fields():
  """No experiment checks its config by hand only (lowrank.overparam was the last)."""
  assert set(registry.names()) <= set(BY_NAME), set(registry.names()) - set(BY_NAME)
  assert "Not declared here yet" not in fields_tool.markdown()


def test_overparam_train_fields_keep_the_collapse_rules_and_their_prefix():
  """lowrank.overparam hands ``train.*`` to the collapse trainer: each is declared with
  that trainer's rule, and a rule across fields of a trainer config (batch_size <=
  data.num_train) still names the ``train.`` field."""
  schema, collapse = BY_NAME["lowrank.overparam"], BY_NAME["collapse"]
  by = {f.name: f for f in collapse.fields}
  for f in schema.fields:
    if f.name.startswith("train."):
      g = by[f.name[len("train."):]]
      assert (f.kind, f.rule()) == (g.kind, g.rule()), f.name
  c = configs.load("lowrank/overparam")
  c.data.num_train, c.train.batch_size = 32, 64
  schema.validate(c)  # each field alone is fine
  with pytest.raises(ConfigError, match=r"^config\.train\.batch_size: batch_size 64 is "
                                        r"larger than data.num_train 32"):
    registry.get("lowrank.overparam").validate(c)
