"""template.yaml against the code it deploys and the local stack that stands in for it.

    "$(bash scripts/sam.sh --python)" localstack/test_template.py            # wiring (make lint-template)
    localstack/with-stack "$(bash scripts/sam.sh --python)" localstack/test_template.py  # + LocalStack

Runs with the SAM venv's Python (PyYAML, boto3 and samtranslator come with aws-sam-cli).

Wiring (no network): every function's binary exists in the workspace; every environment
variable the template sets is read by that binary's code; every S3 prefix a function's
policy grants is one its code builds keys under (crates/core/src/keys.rs), and every
prefix its code uses is granted; secrets are granted exactly where their ARNs are passed;
the S3 trigger filters are the key layout's; layers, ORT_DYLIB_PATH and MODEL_DIR agree
with the build scripts; the model parameters with models/nanodet/model.json; the
dashboard charts every EMF metric the code emits; the alarms on window metrics (AP50, and
the label-free DriftScore and EstimatedAP50) watch what the rollup emits, for the serving
model, and the drift alarm's description names log fields the rollup emits; after the
SAM transform the stack has no dependency cycle (cfn-lint no longer runs the SAM
transform, so it cannot see one).

Rollout (no network): the inference functions are reached only through their `live`
alias, CodeDeploy shifts it per DeploymentType, every DeploymentPreference alarm is an
alarm of this template (the new version's errors, the serving model's AP50), and a
change of any parameter their environment reads publishes a new version (SAM's version
id does not see parameter values: the VersionDescription carries them).

Labelbox image access (no network): with LabelboxImageAccess=presigned there is no
delegated-access role and the samplers may read images (to presign them); with
delegated (and Labelbox's ids) the role exists, trusts Labelbox's account only with the
external id and reads only captures/images/, and the samplers read no images; SAM's
transform and cfn-lint (as `sam validate --lint` runs it) with each mode's parameters;
the bucket's CORS rule for Labelbox's editor; the rule that refuses delegated Labelbox
rows without the ids.

LocalStack (when AWS_ENDPOINT_URL is set; MODELOBS_REQUIRE_LOCALSTACK=1 turns a skip into
a failure): the queues, their attributes and redrive policies, and the bucket
notifications are the template's, and objects written under the trigger prefixes arrive
on the stand-in queues (and others do not).
"""

import copy
import glob
import json
import os
import re
import sys
import time
import unittest
import urllib.parse
import uuid

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cfn  # noqa: E402

ROOT = cfn.ROOT
T = cfn.load()
RES = T["Resources"]
FUNCTIONS = dict(cfn.functions(T))

# Known gaps while other work lands. Each entry must still be a gap: once the code
# catches up the test fails and asks for the entry to go, so the list cannot rot.
PENDING_BINARIES = {}
PENDING_ENV = {}
# Conditions that switch a feature on; the checks look at the template with them on
# (Fn::If takes its first branch; AWS::NoValue drops out). PresignedImageAccess: the
# sampler reads images only to presign them, a path its code keeps for that mode.
FEATURES = {"UseObserve", "PresignedImageAccess"}
# Variables read by a library rather than our code, with the evidence that it still does.
EXTERNAL_ENV = {
    "ORT_DYLIB_PATH": ("Cargo.toml", r'ort = \{[^\n]*"load-dynamic"', "the ort crate (load-dynamic) loads the library it names"),
}
# S3 prefixes a function uses other than through keys:: in its own code, with the
# evidence (a regex over that code) that must still be there to justify the grant.
EXTRA_PREFIXES = {
    "SamplerFunction": [
        ("samples/slots/", r"slot_keys\(", "daily quota slots, keys built in modelobs_core::sampling"),
        ("captures/images/", r"presign_get\(\s*&capture\.image\.key", "presigned image URLs for Labelbox"),
    ],
    # The sweep re-submits through the same backend (its pending decisions already
    # hold their slots, so it claims none).
    "SamplerSweepFunction": [
        ("captures/images/", r"presign_get\(\s*&capture\.image\.key", "presigned image URLs for Labelbox"),
    ],
}
# Prefixes granted ahead of the code that will use them, (function, prefix) -> what for.
# Like PENDING_ENV: once the code uses the prefix the test fails and asks for the entry to go.
PENDING_GRANTS = {}
# Prefixes a function's code reaches (a module it uses also builds them) but never uses:
# not granted, with the evidence, a regex that must NOT match its code, that it still does not.
REACHED_NOT_USED = {
    "InferenceUploadFunction": [
        ("captures/shadow/", r"\bcapture::shadow\(|\.load_shadow\(",
         "modelobs_pipeline::capture::shadow runs SHADOW_MODEL_REF, the HTTP function's; uploads run no shadow"),
        ("profiles/pending/", r"\bcapture::shadow\(|\.load_shadow\(",
         "capture::shadow writes the shadow record's profile delta; uploads run no shadow"),
    ],
}
# Prefixes a function only lists (s3:ListBucket, no object grant), with the evidence.
LIST_ONLY = {
    "RollupFunction": [
        ("captures/predictions/", r"store\.list\(&prefix\)[\s\S]*parse_capture_record", "counts capture records"),
    ],
}
# Every EMF metric the functions emit, by dimension set (namespace ModelObservability).
# The dashboard test checks the code emits no metric missing here and that each entry
# is charted with exactly its dimensions (SEARCH matches a dimension set exactly).
IMAGE = ("ModelName", "ModelVersion")
WINDOW = ("ModelName", "ModelVersion", "Granularity")
EMF = {
    IMAGE: {"TP", "FP", "FN", "Detections", "GroundTruthObjects", "LabelLagSeconds", "AP50", "MeanIoU",
            "CaptureFailures"},
    IMAGE + ("ClassName",): {"AP50"},
    WINDOW: {"ImagesLabelled", "CapturesInWindow", "TP", "FP", "FN", "AP", "AP50", "AP75", "AR100",
             "Precision", "Recall", "F1", "MeanIoU", "LabelCoverage", "LabelLagSeconds",
             # label-free, from the window's capture profiles (issue 16): the drift test
             # against the reference, and the AP50 estimate with its band (once calibrated)
             "ProfiledCaptures", "DriftScore", "DriftAlert", "EstimatedAP50", "EstimatedAP50Low",
             "EstimatedAP50High"},
    WINDOW + ("ClassName",): {"AP", "AP50"},
    ("Sink",): {"SinkFailures"},
}
# The window metrics issue #8 asks for (the mean label lag is LabelLagSeconds of a window).
WINDOW_METRICS = {"AP", "AP50", "AP75", "AR100", "Precision", "Recall", "F1", "ImagesLabelled",
                  "LabelCoverage", "LabelLagSeconds"}


def slurp(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def read(path):
    return slurp(os.path.join(ROOT, path))


def toml(path):
    if tomllib is None:
        raise unittest.SkipTest("needs Python >= 3.11 (tomllib)")
    with open(os.path.join(ROOT, path), "rb") as f:
        return tomllib.load(f)


# --- the workspace -----------------------------------------------------------------


class Package:
    def __init__(self, member):
        self.dir = os.path.join(ROOT, member)
        manifest = toml(os.path.join(member, "Cargo.toml"))
        self.name = manifest["package"]["name"]
        self.crate = self.name.replace("-", "_")
        self.bins = {}
        for b in manifest.get("bin", []):
            self.bins[b["name"]] = os.path.join(self.dir, b.get("path", f"src/bin/{b['name']}.rs"))
        if os.path.exists(os.path.join(self.dir, "src/main.rs")) and self.name not in self.bins:
            self.bins[self.name] = os.path.join(self.dir, "src/main.rs")
        for path in glob.glob(os.path.join(self.dir, "src/bin/*.rs")):
            self.bins.setdefault(os.path.basename(path)[:-3], path)
        self.deps = set((manifest.get("dependencies") or {}).keys())


def workspace():
    root = toml("Cargo.toml")
    paths = {
        name: spec["path"]
        for name, spec in root["workspace"]["dependencies"].items()
        if isinstance(spec, dict) and "path" in spec
    }
    packages = [Package(m) for m in root["workspace"]["members"]]
    return packages, paths


PACKAGES, PATH_DEPS = workspace()


def find_binary(name):
    hits = [(p, p.bins[name]) for p in PACKAGES if name in p.bins]
    return hits[0] if len(hits) == 1 else (None, None)


def module_file(pkg, module):
    for cand in (f"src/{module}.rs", f"src/{module}/mod.rs"):
        path = os.path.join(pkg.dir, cand)
        if os.path.exists(path):
            return path
    return None


# Workspace libraries whose modules a binary's code runs (the application layer, the
# adapters): followed like the binary's own modules. Not modelobs-core: it *defines*
# every key (keys.rs), so following it would count every prefix as used.
NOT_FOLLOWED = {"modelobs-core"}


def binary_sources(pkg, bin_path):
    """The binary's own file and the modules it reaches (`<crate>::m`, `crate::m`,
    `super::m`, and `<workspace library>::m` of its path dependencies),
    transitively: the code that runs."""
    by_crate = {p.crate: p for p in PACKAGES}
    files, todo = set(), [(pkg, bin_path)]
    while todo:
        owner, path = todo.pop()
        if path in files:
            continue
        files.add(path)
        text = without_tests(slurp(path))
        refs = set()
        for m in re.findall(rf"\b(?:{owner.crate}|crate|super)::(\w+)", text):
            refs.add((owner, m))
        for m in re.findall(r"^\s*(?:pub\s+)?mod\s+(\w+)\s*;", text, re.M):
            refs.add((owner, m))
        # `use crate::{a, b::c}` groups
        for group in re.findall(rf"\b(?:{owner.crate}|crate)::\{{([^}}]*)\}}", text):
            refs |= {(owner, g.strip().split("::")[0]) for g in group.split(",") if g.strip()}
        for dep in owner.deps:
            lib = by_crate.get(dep.replace("-", "_"))
            if lib is None or dep in NOT_FOLLOWED or lib is owner:
                continue
            for m in re.findall(rf"\b{lib.crate}::(\w+)", text):
                refs.add((lib, m))
            for group in re.findall(rf"\b{lib.crate}::\{{([^}}]*)\}}", text):
                refs |= {(lib, g.strip().split("::")[0]) for g in group.split(",") if g.strip()}
        for target, m in refs:
            f = module_file(target, m)
            if f:
                todo.append((target, f))
                sub = os.path.join(target.dir, "src", m)
                if os.path.isdir(sub):
                    todo.extend((target, g) for g in glob.glob(os.path.join(sub, "**/*.rs"), recursive=True))
    return sorted(files)


def dependency_sources(pkg):
    out = []
    for dep in sorted(pkg.deps):
        if dep in PATH_DEPS:
            out += sorted(glob.glob(os.path.join(ROOT, PATH_DEPS[dep], "src/**/*.rs"), recursive=True))
    return out


def without_tests(text):
    """A source file up to its `#[cfg(test)] mod ...` (test code reads its own
    variables), without `//` comments (they name modules and variables too)."""
    code = re.split(r"#\[cfg\(test\)\]\s*(?:pub\s+)?mod\s", text)[0]
    return re.sub(r"(^|\s)//.*$", r"\1", code, flags=re.M)


def text_of(paths):
    return "\n".join(without_tests(slurp(p)) for p in paths)


def reads_in_dependencies(pkg, own, literal):
    """Whether a path dependency reads `literal` in a module the function's own code
    uses (a variable read by an adapter the function never builds does not count)."""
    for path in dependency_sources(pkg):
        if f'"{literal}"' not in without_tests(slurp(path)):
            continue
        module = os.path.splitext(os.path.basename(path))[0]
        if module in ("lib", "main", "mod") or re.search(rf"\b{module}::", own):
            return True
    return False


def secret_names(arn_var):
    """The names `modelobs_adapters::secrets` resolves through `arn_var`, by its own
    rule (`format!("{name}_SECRET_ARN")`, and NAME_SECRET -> NAME_SECRET_ARN if it
    special-cases that)."""
    path = os.path.join(ROOT, "crates/adapters/src/secrets.rs")
    if not arn_var.endswith("_SECRET_ARN") or not os.path.exists(path):
        return []
    src = without_tests(slurp(path))
    names = []
    if 'format!("{name}_SECRET_ARN")' in src:
        names.append(arn_var[: -len("_SECRET_ARN")])
    if re.search(r'(?:strip_suffix|ends_with|trim_end_matches)\("_SECRET"\)', src):
        names.append(arn_var[: -len("_ARN")])
    return names


# --- crates/core/src/keys.rs ----------------------------------------------------------


def key_layout():
    """(constants, fn -> the key prefix it builds or names), from keys.rs itself."""
    src = read("crates/core/src/keys.rs").split("#[cfg(test)]")[0]
    consts = dict(re.findall(r'pub const (\w+): &str = "([^"]*)";', src))
    bodies = {}
    parts = re.split(r"\n(?=(?:pub\s+)?fn\s)", src)
    for part in parts:
        m = re.match(r"(?:pub\s+)?fn\s+(\w+)", part)
        if m:
            bodies[m.group(1)] = part

    def literal_prefix(fmt, depth):
        """The fixed start of a key format string, if it starts with a key constant
        (or with `{}`, another key function's result); error messages do not."""
        if not (fmt.startswith("{}") or re.match(r"\{([A-Z_]+)\}", fmt)):
            return "", False
        out, i = "", 0
        while i < len(fmt):
            if fmt[i] == "{":
                j = fmt.index("}", i)
                name = fmt[i + 1 : j]
                if name in consts:
                    out += consts[name]
                    i = j + 1
                    continue
                return out, (name == "" and out == "")
            out += fmt[i]
            i += 1
        return out, False

    memo = {}

    def prefix_of(fn, depth=0):
        if fn in memo or depth > 10:
            return memo.get(fn)
        body = bodies[fn]
        found = []
        for m in re.finditer(r'format!\(\s*"([^"]*)"\s*,?\s*([^;]*)', body):
            p, leading_arg = literal_prefix(m.group(1), depth)
            if leading_arg:  # format!("{}...", other_fn(...))
                call = re.match(r"\s*(\w+)\(", m.group(2))
                inner = prefix_of(call.group(1), depth + 1) if call and call.group(1) in bodies else None
                if inner:
                    found.append(inner)
            elif p:
                found.append(p)
        if not found:
            for call in re.findall(r"\b(\w+)\(", body.split("{", 1)[-1]):
                if call in bodies and call != fn:
                    inner = prefix_of(call, depth + 1)
                    if inner:
                        found.append(inner)
        if not found:
            found = [consts[c] for c in re.findall(r"\b([A-Z][A-Z_]+)\b", body) if c in consts]
        result = os.path.commonprefix(found) if found else None
        if result is not None and "/" in result:
            result = result[: result.rindex("/") + 1]
        memo[fn] = result or None
        return memo[fn]

    return consts, {fn: prefix_of(fn) for fn in bodies}


CONSTS, KEY_FNS = key_layout()


def code_prefixes(code):
    out = set()
    for name in set(re.findall(r"\bkeys::(\w+)", code)):
        if name in CONSTS:
            out.add(CONSTS[name])
        elif KEY_FNS.get(name):
            out.add(KEY_FNS[name])
    return out


# --- template helpers --------------------------------------------------------------------


def feature_on(v):
    """`v` with every FEATURES condition true."""
    if isinstance(v, dict):
        if "Fn::If" in v and v["Fn::If"][0] in FEATURES:
            return feature_on(v["Fn::If"][1])
        return {k: feature_on(x) for k, x in v.items()}
    if isinstance(v, list):
        return [feature_on(x) for x in v if x != {"Ref": "AWS::NoValue"}]
    return v


def env_of(res):
    merged = dict(T.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
    merged.update(res.get("Properties", {}).get("Environment", {}).get("Variables", {}))
    return feature_on(merged)


def statements(res):
    out = []
    for pol in res.get("Properties", {}).get("Policies", []) or []:
        if isinstance(pol, dict) and "Statement" in pol:
            out += feature_on(pol["Statement"])
    return out


def lists_bucket(res):
    return any(
        as_list(st["Action"]) == ["s3:ListBucket"] and "Condition" not in st for st in statements(res)
    )


def as_list(v):
    return v if isinstance(v, list) else [v]


BUCKET_ARN_SUB = "arn:${AWS::Partition}:s3:::" + T["Resources"]["DataBucket"]["Properties"]["BucketName"]["Fn::Sub"]


def policy_prefixes(res):
    """S3 object prefixes a function's policy grants, and whether any grant is on
    something other than the data bucket's prefixes."""
    prefixes, strays = set(), []
    for st in statements(res):
        actions = as_list(st["Action"])
        if not any(a.startswith("s3:") for a in actions):
            continue
        for r in as_list(st["Resource"]):
            sub = r.get("Fn::Sub") if isinstance(r, dict) else None
            if sub == BUCKET_ARN_SUB and actions == ["s3:ListBucket"]:
                continue
            if not (isinstance(sub, str) and sub.startswith(BUCKET_ARN_SUB + "/") and sub.endswith("*")):
                strays.append(r)
                continue
            if "s3:ListBucket" in actions:
                strays.append(r)
            prefixes.add(sub[len(BUCKET_ARN_SUB) + 1 : -1])
    return prefixes, strays


def s3_events(res):
    return {
        name: ev["Properties"]
        for name, ev in (res.get("Properties", {}).get("Events") or {}).items()
        if ev["Type"] == "S3"
    }


# --- wiring --------------------------------------------------------------------------------


def own_code(lid):
    pkg, path = find_binary(cfn.binary(FUNCTIONS[lid]))
    return text_of(binary_sources(pkg, path))


class Wiring(unittest.TestCase):
    def test_globals(self):
        g = T["Globals"]["Function"]
        self.assertEqual(g["Runtime"], "provided.al2023")  # cfn-lint lets a bad runtime pass
        self.assertEqual(g["Handler"], "bootstrap")
        self.assertEqual(len(g["Architectures"]), 1)
        self.assertIn(g["Architectures"][0], ("arm64", "x86_64"))
        self.assertEqual(g["LoggingConfig"]["LogFormat"], "JSON")
        for lid, res in FUNCTIONS.items():
            with self.subTest(lid):
                props = res["Properties"]
                self.assertEqual(res["Metadata"]["BuildMethod"], "rust-cargolambda")
                self.assertEqual(props["CodeUri"], ".")
                for k in ("Runtime", "Handler", "Architectures"):
                    self.assertNotIn(k, props, "set once, in Globals")

    def test_binaries_exist(self):
        for lid, res in FUNCTIONS.items():
            name = cfn.binary(res)
            with self.subTest(lid, binary=name):
                pkg, path = find_binary(name)
                if name in PENDING_BINARIES:
                    self.assertIsNone(pkg, f"{name} exists now: remove it from PENDING_BINARIES")
                    continue
                self.assertIsNotNone(pkg, f"no [[bin]] or src/bin/{name}.rs named {name} in the workspace")
                self.assertTrue(os.path.exists(path), path)

    def test_every_env_var_is_read_by_its_function(self):
        for lid, res in FUNCTIONS.items():
            pkg, path = find_binary(cfn.binary(res))
            if pkg is None:
                continue  # test_binaries_exist speaks for it
            own = text_of(binary_sources(pkg, path))
            for var in env_of(res):
                if var in EXTERNAL_ENV:
                    file, evidence, why = EXTERNAL_ENV[var]
                    with self.subTest(lid, var=var):
                        self.assertRegex(read(file), evidence, f"{var}: {why}; {file} no longer shows it")
                    continue
                read_ = f'"{var}"' in own or reads_in_dependencies(pkg, own, var)
                # Or through modelobs_adapters::secrets, called with the NAME it maps to var.
                for name in secret_names(var):
                    read_ = read_ or bool(re.search(rf'(?:resolve_secret\w*|secrets::\w+)\(\s*"{name}"', own))
                with self.subTest(lid, var=var):
                    if (lid, var) in PENDING_ENV:
                        self.assertFalse(read_, f"{var} is read now: remove ({lid!r}, {var!r}) from PENDING_ENV")
                    else:
                        called = re.findall(r'resolve_secret\w*\(\s*"(\w+)"', own)
                        hint = "".join(
                            f"; it resolves the secret {n!r}, which modelobs_adapters::secrets reads from "
                            f"{n}_SECRET_ARN"
                            for n in called
                            if var.startswith(n) and f"{n}_SECRET_ARN" != var
                        )
                        self.assertTrue(read_, f"{lid} sets {var}, but {cfn.binary(res)}'s code never reads it{hint}")

    def test_s3_grants_are_the_prefixes_the_code_uses(self):
        self.assertTrue(KEY_FNS.get("capture_record_of", "").startswith("captures/predictions/"), KEY_FNS)
        for lid, res in FUNCTIONS.items():
            pkg, path = find_binary(cfn.binary(res))
            if pkg is None:
                continue
            code = text_of(binary_sources(pkg, path))
            used = code_prefixes(code)
            for prefix, evidence, why in EXTRA_PREFIXES.get(lid, []):
                self.assertRegex(code, evidence, f"{lid}: {prefix} is granted for {why}; the code no longer shows it")
                used.add(prefix)
            granted, strays = policy_prefixes(res)
            for prefix, evidence, why in LIST_ONLY.get(lid, []):
                self.assertRegex(code, evidence, f"{lid}: lists {prefix} to {why}; the code no longer shows it")
                self.assertTrue(lists_bucket(res), f"{lid} lists {prefix} without s3:ListBucket")
                used.discard(prefix)
            for prefix, evidence, why in REACHED_NOT_USED.get(lid, []):
                self.assertIn(prefix, used, f"{lid}: its code no longer reaches {prefix}: remove it from REACHED_NOT_USED")
                self.assertNotRegex(code, evidence, f"{lid} uses {prefix} now ({why} no longer holds): grant it")
                used.discard(prefix)
            pending = {p for (f, p) in PENDING_GRANTS if f == lid}
            for prefix in pending:
                self.assertNotIn(prefix, used, f"{lid} uses {prefix} now: remove it from PENDING_GRANTS")
                self.assertIn(prefix, granted, f"PENDING_GRANTS names {prefix} for {lid}, which does not grant it")
            with self.subTest(lid, used=sorted(used), granted=sorted(granted)):
                self.assertEqual(strays, [], "S3 grants outside the data bucket's prefixes")
                for u in used:
                    self.assertTrue(any(u.startswith(g) for g in granted), f"code uses {u} but nothing grants it")
                for g in granted - pending:
                    # Exactly a prefix the code uses: a broader grant (labeling/ for
                    # labeling/queue/) is as wrong as an unused one.
                    self.assertIn(g, used, f"{g} is granted but the code uses no keys under exactly that prefix")

    def test_s3_triggers_follow_the_key_layout(self):
        want = {
            "SamplerFunction": (CONSTS["CAPTURE_PREDICTIONS"], ".json"),
            "InferenceUploadFunction": (CONSTS["INCOMING"], ""),
        }
        self.assertTrue(KEY_FNS["capture_record"].startswith(CONSTS["CAPTURE_PREDICTIONS"]))
        self.assertIn('{id}.json"', read("crates/core/src/keys.rs"))
        got = {}
        for lid, res in FUNCTIONS.items():
            for ev in s3_events(res).values():
                self.assertEqual(ev["Bucket"], {"Ref": "DataBucket"})
                self.assertEqual(as_list(ev["Events"]), ["s3:ObjectCreated:*"])
                got[lid] = cfn.s3_filter(ev)
                invoke = res["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
                self.assertEqual(invoke["Type"], "SQS")
                self.assertEqual(RES[invoke["Destination"]["Fn::GetAtt"][0]]["Type"], "AWS::SQS::Queue")
        self.assertEqual(got, want)

    def test_metrics_queue(self):
        m = FUNCTIONS["MetricsFunction"]["Properties"]
        (ev,) = [e["Properties"] for e in m["Events"].values() if e["Type"] == "SQS"]
        self.assertEqual(ev["Queue"], {"Fn::GetAtt": ["MetricsQueue", "Arn"]})
        self.assertEqual(ev["BatchSize"], 10)
        self.assertEqual(ev["FunctionResponseTypes"], ["ReportBatchItemFailures"])
        q = RES["MetricsQueue"]["Properties"]
        self.assertGreaterEqual(q["VisibilityTimeout"], 6 * m["Timeout"])
        self.assertEqual(q["RedrivePolicy"]["deadLetterTargetArn"], {"Fn::GetAtt": ["MetricsDeadLetterQueue", "Arn"]})
        self.assertGreater(q["RedrivePolicy"]["maxReceiveCount"], 1)
        self.assertEqual(env_of(FUNCTIONS["WebhookFunction"])["METRICS_QUEUE_URL"], {"Ref": "MetricsQueue"})

    def test_every_failure_queue_has_an_alarm_and_the_exposed_functions_reserved_concurrency(self):
        # Every DLQ and async failure destination is watched by an AWS/SQS alarm.
        targets = set()
        for r in RES.values():
            p = r.get("Properties", {})
            dlq = p.get("RedrivePolicy", {}).get("deadLetterTargetArn")
            dest = p.get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            targets |= {ref["Fn::GetAtt"][0] for ref in (dlq, dest) if ref}
        alarmed = {
            d["Value"]["Fn::GetAtt"][0]
            for r in RES.values()
            if r["Type"] == "AWS::CloudWatch::Alarm" and r["Properties"].get("Namespace") == "AWS/SQS"
            for d in r["Properties"]["Dimensions"]
            if d["Name"] == "QueueName"
        }
        self.assertGreaterEqual(len(targets), 3)
        self.assertEqual(targets - alarmed, set(), "failure queues without an alarm")
        # The public webhook and the one-at-a-time rollup reserve concurrency (0 turns it off).
        for lid, param in [("WebhookFunction", "WebhookConcurrency"), ("RollupFunction", "RollupConcurrency")]:
            rc = RES[lid]["Properties"]["ReservedConcurrentExecutions"]["Fn::If"]
            self.assertEqual(rc[1], {"Ref": param}, lid)
            self.assertEqual(T["Conditions"][rc[0]], {"Fn::Not": [{"Fn::Equals": [{"Ref": param}, 0]}]}, lid)
        # A failed scheduled run is retried by the next one, never alongside it.
        for lid in ["RollupFunction", "SamplerSweepFunction"]:
            self.assertEqual(RES[lid]["Properties"]["EventInvokeConfig"]["MaximumRetryAttempts"], 0, lid)

    def test_secrets_are_granted_exactly_where_passed(self):
        for lid, res in FUNCTIONS.items():
            env = env_of(res)
            passed = [v for k, v in env.items() if k.endswith("_SECRET_ARN")]
            granted = [
                r
                for st in statements(res)
                if "secretsmanager:GetSecretValue" in as_list(st["Action"])
                for r in as_list(st["Resource"])
            ]
            with self.subTest(lid):
                key = lambda v: json.dumps(v, sort_keys=True)  # noqa: E731
                self.assertEqual(sorted(map(key, passed)), sorted(map(key, granted)))
                for k, v in env.items():
                    if re.search(r"SECRET|TOKEN|API_KEY|PASSWORD", k):
                        self.assertTrue(k.endswith("_SECRET_ARN"), f"{k}: pass secrets by ARN, never by value")
        for p, spec in T["Parameters"].items():
            if re.search(r"Secret|Token|ApiKey|Password", p):
                self.assertTrue(p.endswith("SecretArn"), f"parameter {p} would carry a secret value")

    def test_layers_and_paths_match_the_build_scripts(self):
        arch = {"arm64": "aarch64", "x86_64": "x86_64"}[T["Globals"]["Function"]["Architectures"][0]]
        ort = RES["OnnxRuntimeLayer"]["Properties"]
        build = read("infra/layer/build.sh")
        self.assertIn('out="$here/build/onnxruntime-$arch.zip"', build)
        self.assertEqual(ort["ContentUri"], f"infra/layer/build/onnxruntime-{arch}.zip")
        self.assertEqual(ort["CompatibleArchitectures"], T["Globals"]["Function"]["Architectures"])
        version = re.search(r"^ORT_VERSION=(\S+)", read("scripts/ort.sh"), re.M).group(1)
        self.assertIn('mkdir -p "$stage/lib"', build)  # the zip's lib/ -> /opt/lib
        model = RES["ModelLayer"]["Properties"]
        self.assertIn('out="$here/build/model-nanodet.zip"', read("infra/layer/model.sh"))
        self.assertEqual(model["ContentUri"], "infra/layer/build/model-nanodet.zip")
        self.assertIn('rel = os.path.join("models", "nanodet", name)', read("infra/layer/model.sh"))
        for lid in ("InferenceFunction", "InferenceUploadFunction"):
            env = env_of(FUNCTIONS[lid])
            self.assertEqual(env["ORT_DYLIB_PATH"], f"/opt/lib/libonnxruntime.so.{version}")
            self.assertEqual(env["MODEL_DIR"], "/opt/models/nanodet")
            self.assertEqual(
                FUNCTIONS[lid]["Properties"]["Layers"], [{"Ref": "OnnxRuntimeLayer"}, {"Ref": "ModelLayer"}]
            )

    def test_model_parameters_match_model_json(self):
        meta = json.loads(read("models/nanodet/model.json"))
        self.assertEqual(T["Parameters"]["ModelName"]["Default"], meta["name"])
        self.assertEqual(T["Parameters"]["ModelVersion"]["Default"], meta["version"])

    def test_labelbox_setup_output_is_accepted_by_sam_deploy(self):
        # `sam deploy --parameter-overrides` refuses names the template lacks.
        src = read("crates/labelbox/src/setup.rs")
        fmt = re.search(r"fn parameter_overrides[^{]*\{\s*format!\(\s*\"([^\"]+)\"", src).group(1)
        names = re.findall(r"(\w+)=\{\}", fmt.replace("\\n", "\n"))
        self.assertGreaterEqual(len(names), 2, fmt)
        for n in names:
            self.assertIn(n, T["Parameters"])

    def test_dashboard_charts_every_emitted_metric(self):
        emitted = set()
        sources = glob.glob(os.path.join(ROOT, "functions/*/src/**/*.rs"), recursive=True)
        sources += glob.glob(os.path.join(ROOT, "crates/pipeline/src/**/*.rs"), recursive=True)
        for path in sources:
            text = without_tests(slurp(path))
            # ("Name", value, "Unit") tuples (emf.rs; a value may nest calls two deep, as in
            # f64::from(u8::from(alert))) and {"Name": ...} directives (capture.rs)
            emitted |= set(re.findall(r'\(\s*"([A-Za-z0-9]+)",[^()"]*(?:\((?:[^()]|\([^()]*\))*\)[^()"]*)*,\s*"(?:Count|Seconds|None|Milliseconds|Percent)"\s*\)', text))
            if "CloudWatchMetrics" in text:
                emitted |= set(re.findall(r'"Name":\s*"([A-Za-z0-9]+)"', text))
                # ("AP", c.ap) pairs that get their unit later
                emitted |= set(re.findall(r'\(\s*"([A-Z][A-Za-z0-9]*)",\s*[a-z_]+(?:\.[a-z0-9_]+)+\s*\)', text))
        tabled = set().union(*EMF.values())
        self.assertTrue({"AP50", "TP", "CaptureFailures", "SinkFailures", "CapturesInWindow"} <= emitted, emitted)
        self.assertEqual(emitted - tabled, set(), "emitted but not in EMF (chart them and add them there)")
        self.assertEqual(tabled - emitted, set(), "in EMF but no longer emitted")
        self.assertTrue(WINDOW_METRICS <= EMF[WINDOW])
        emf = without_tests(read("crates/pipeline/src/emf.rs"))
        for dim in {d for dims in EMF for d in dims}:
            self.assertIn(f'"{dim}"', emf)

        body = RES["QualityDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        ns = re.search(r'NAMESPACE: &str = "(\w+)"', emf).group(1)
        charted = set()
        for schema, rest in re.findall(r"SEARCH\('\{([^}]*)\}([^']*)'", body):
            parts = schema.split(",")
            self.assertEqual(parts[0], ns)
            for metric in re.findall(r'MetricName=\\"(\w+)\\"', rest):
                charted.add((tuple(parts[1:]), metric))
        for dims, metrics in EMF.items():
            for metric in metrics:
                with self.subTest(dims=dims, metric=metric):
                    self.assertIn((dims, metric), charted)
        for dims, metric in charted:
            self.assertIn(metric, EMF.get(dims, set()), f"charted {metric} by {dims}: nothing emits it")
        resolved = re.sub(r"\$\{[^}]+\}", "0", body)
        widgets = json.loads(resolved)["widgets"]
        self.assertTrue(all({"type", "x", "y", "width", "height", "properties"} <= set(w) for w in widgets))

    def test_ap50_alarm(self):
        alarm = RES["AP50Alarm"]["Properties"]
        ns = re.search(r'NAMESPACE: &str = "(\w+)"', read("crates/pipeline/src/emf.rs")).group(1)
        self.assertEqual((alarm["Namespace"], alarm["MetricName"]), (ns, "AP50"))
        self.assertEqual((alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]), (2, 2))
        self.assertEqual(alarm["TreatMissingData"], "notBreaching")
        self.assertEqual(alarm["ComparisonOperator"], "LessThanThreshold")
        self.assertEqual(alarm["Threshold"], {"Ref": "AP50AlarmThreshold"})
        dims = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        self.assertEqual(tuple(dims), WINDOW)  # a window AP50, as EMF names its dimensions
        # The serving model's: ServingModelRef's <name>/<version> when it names one (the
        # registry refuses a version whose model.json names another, so the metrics carry
        # these), else the layer's ModelName/ModelVersion.
        self.assertEqual(
            T["Conditions"]["ServesRegistryModel"], {"Fn::Not": [{"Fn::Equals": [{"Ref": "ServingModelRef"}, ""]}]}
        )
        split = {"Fn::Split": ["/", {"Fn::Sub": "${ServingModelRef}/"}]}
        self.assertEqual(dims["ModelName"], {"Fn::If": ["ServesRegistryModel", {"Fn::Select": [0, split]}, {"Ref": "ModelName"}]})
        self.assertEqual(
            dims["ModelVersion"], {"Fn::If": ["ServesRegistryModel", {"Fn::Select": [1, split]}, {"Ref": "ModelVersion"}]}
        )
        self.assertRegex(
            without_tests(read("crates/pipeline/src/registry.rs")),
            r"if entry\.reference\(\) != \*model\b",
            "registry::pull no longer refuses a model.json naming another version than the reference",
        )
        window = T["Parameters"][dims["Granularity"]["Ref"]]
        self.assertEqual(set(window["AllowedValues"]), {"hour", "day"})  # Granularity::as_str
        self.assertEqual(alarm["Period"], {"Fn::If": ["AlarmOnHourWindows", 3600, 86400]})

    def test_label_free_alarms(self):
        # DriftAlarm and EstimatedAP50Alarm watch window metrics of the rollup (emf.rs), of
        # the serving model exactly as AP50Alarm does (test_ap50_alarm), notifying the same way.
        emf = without_tests(read("crates/pipeline/src/emf.rs"))
        ns = re.search(r'NAMESPACE: &str = "(\w+)"', emf).group(1)
        ap50 = RES["AP50Alarm"]["Properties"]
        ap50_dims = {d["Name"]: d["Value"] for d in ap50["Dimensions"]}
        want = {
            # metric, statistic, operator, threshold, Granularity, period, datapoints (of as many)
            "DriftAlarm": ("DriftScore", "Maximum", "GreaterThanOrEqualToThreshold",
                           {"Ref": "DriftAlarmThreshold"}, "hour", 3600, 1),
            "EstimatedAP50Alarm": ("EstimatedAP50", "Average", "LessThanThreshold",
                                   {"Ref": "AP50AlarmThreshold"}, {"Ref": "AP50AlarmWindow"}, ap50["Period"], 2),
        }
        for lid, (metric, stat, op, threshold, granularity, period, n) in want.items():
            alarm = RES[lid]["Properties"]
            with self.subTest(lid):
                self.assertEqual((alarm["Namespace"], alarm["MetricName"]), (ns, metric))
                self.assertIn(metric, EMF[WINDOW])
                self.assertTrue(f'"{metric}"' in emf, f"nothing emits {metric} (crates/pipeline/src/emf.rs)")
                self.assertEqual(alarm["Statistic"], stat)
                self.assertEqual(alarm["ComparisonOperator"], op)
                self.assertEqual(alarm["Threshold"], threshold)
                dims = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
                self.assertEqual(tuple(dims), WINDOW)
                self.assertEqual(dims["ModelName"], ap50_dims["ModelName"])
                self.assertEqual(dims["ModelVersion"], ap50_dims["ModelVersion"])
                self.assertEqual(dims["Granularity"], granularity)
                self.assertEqual(alarm["Period"], period)
                self.assertEqual((alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]), (n, n))
                self.assertEqual(alarm["TreatMissingData"], "notBreaching")  # no profiles / no calibration
                self.assertEqual(alarm["AlarmActions"], ap50["AlarmActions"])
                self.assertEqual(alarm["OKActions"], ap50["OKActions"])
        self.assertEqual(RES["DriftAlarm"]["Properties"]["Dimensions"][2]["Value"], "hour")  # Granularity::as_str
        p = T["Parameters"]["DriftAlarmThreshold"]
        # DriftScore: -log10 of a corrected p-value, capped at 16; 3 = alpha 1e-3, the rollup's alert line.
        self.assertEqual((p["Type"], p["Default"], p["MinValue"], p["MaxValue"]), ("Number", 3, 0, 16))
        # The description tells the operator where the drifted features are: the rollup's
        # log (DriftedFeatures, a property of its EMF line, not a metric) and the CLI.
        text = RES["DriftAlarm"]["Properties"]["AlarmDescription"]["Fn::Sub"]
        self.assertLessEqual(len(text), 1024 - 200)  # CloudWatch's limit, with room for the group's name
        self.assertEqual(FUNCTIONS["RollupFunction"]["Properties"]["LoggingConfig"]["LogGroup"], {"Ref": "RollupLogGroup"})
        self.assertIn("log group ${RollupLogGroup}", text)
        query = re.search(r"(fields @timestamp[^|]*(?:\|[^|]*?)*sort @timestamp desc)", text).group(1)
        self.assertEqual(
            query,
            "fields @timestamp, ModelVersion, Granularity, DriftScore, DriftedFeatures | filter DriftAlert = 1 | sort @timestamp desc",
        )
        for name in re.findall(r"\b([A-Z]\w+)\b", query):
            with self.subTest(field=name):
                if name in WINDOW:
                    continue
                if name == "DriftedFeatures":
                    pipeline = text_of(glob.glob(os.path.join(ROOT, "crates/pipeline/src/**/*.rs"), recursive=True))
                    self.assertTrue(f'"{name}"' in pipeline, f"the rollup's EMF line does not carry {name} (crates/pipeline/src)")
                else:
                    self.assertIn(name, EMF[WINDOW])
        self.assertIn("`modelobs metrics --json`", text)
        self.assertIn('"drift": {"score", "alert", "features"}', text)

    def test_model_references(self):
        for name in ("ServingModelRef", "ShadowModelRef"):
            p = T["Parameters"][name]
            with self.subTest(name):
                self.assertEqual(p["Default"], "")  # the layer's model; no shadow
                for ok in ("", "nanodet-g-416-coco/human-models-3.0.4", "nanodet-g-416-coco/ft-0123456789-s0"):
                    self.assertIsNotNone(re.fullmatch(p["AllowedPattern"], ok), ok)
                for bad in ("nanodet", "a/b/c", "a b/c", "/v1", "a/", "a/v1;rm"):
                    self.assertIsNone(re.fullmatch(p["AllowedPattern"], bad), bad)
        # The pattern's characters are keys::check_segment's.
        self.assertIn("b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')", read("crates/core/src/keys.rs"))
        http, upload = env_of(FUNCTIONS["InferenceFunction"]), env_of(FUNCTIONS["InferenceUploadFunction"])
        self.assertEqual(http["MODEL_REF"], {"Ref": "ServingModelRef"})
        self.assertEqual(upload["MODEL_REF"], {"Ref": "ServingModelRef"})
        self.assertEqual(http["SHADOW_MODEL_REF"], {"Ref": "ShadowModelRef"})
        # Uploads run no shadow: the evidence REACHED_NOT_USED relies on sees the HTTP
        # function's shadow and none in the upload function.
        for _, evidence, _ in REACHED_NOT_USED["InferenceUploadFunction"]:
            self.assertRegex(own_code("InferenceFunction"), evidence)
            self.assertNotRegex(own_code("InferenceUploadFunction"), evidence)
        self.assertNotIn("SHADOW_MODEL_REF", upload, "set where no shadow runs")
        # What the CLI tells people to deploy with names parameters the template has.
        hints = set()
        for path in glob.glob(os.path.join(ROOT, "cli/src/**/*.rs"), recursive=True):
            hints |= set(re.findall(r"--parameter-overrides (\w+)=", slurp(path)))
        for name in hints:
            self.assertIn(name, T["Parameters"])

    def test_no_dependency_cycle_after_the_sam_transform(self):
        out = transformed()
        bucket = out["Resources"]["DataBucket"]["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
        targets = [c["Function"]["Fn::GetAtt"][0] if "Fn::GetAtt" in c["Function"] else c["Function"]["Ref"] for c in bucket]
        # the upload function through its alias (AutoPublishAlias), the sampler directly
        self.assertEqual(sorted(targets), ["InferenceUploadFunctionAliaslive", "SamplerFunction"])
        cycle = find_cycle(out["Resources"])
        self.assertIsNone(cycle, f"dependency cycle: {' -> '.join(cycle or [])}")

    def test_who_may_call_what(self):
        out = transformed()["Resources"]
        paths = out["InferenceHttpApi"]["Properties"]["Body"]["paths"]
        self.assertEqual(paths["/predict"]["post"]["security"], [{"AWS_IAM": []}])
        self.assertEqual(paths["/health"]["get"]["security"], [{"NONE": []}])
        self.assertEqual(out["WebhookFunctionUrl"]["Properties"]["AuthType"], "NONE")  # HMAC inside
        self.assertEqual(out["InferenceFunctionUrl"]["Properties"]["AuthType"], {"Ref": "InferenceUrlAuth"})
        self.assertEqual(T["Parameters"]["InferenceUrlAuth"]["Default"], "AWS_IAM")
        # NONE needs both permissions, which SAM adds only for a literal NONE.
        public = {k: v for k, v in out.items() if v.get("Condition") == "InferenceUrlPublic"}
        self.assertEqual(
            {v["Properties"]["Action"] for v in public.values()}, {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
        )

    def test_the_cycle_check_sees_the_classic_bucket_cycle(self):
        # The check above would pass vacuously if it could not see a cycle: feed it the
        # mistake it guards against (DATA_BUCKET: !Ref DataBucket).
        bad = copy.deepcopy(T)
        bad["Globals"]["Function"]["Environment"]["Variables"]["DATA_BUCKET"] = {"Ref": "DataBucket"}
        self.assertIsNotNone(find_cycle(transformed(bad)["Resources"]))

    def test_local_plan_refuses_what_it_cannot_reproduce(self):
        bad = copy.deepcopy(T)
        bad["Resources"]["MetricsQueue"]["Properties"]["FifoQueue"] = True
        with self.assertRaises(cfn.TemplateError):
            cfn.plan(bad)
        bad = copy.deepcopy(T)
        bad["Resources"]["Extra"] = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "x"}}
        with self.assertRaises(cfn.TemplateError):
            cfn.plan(bad)


# --- Labelbox image access ---------------------------------------------------------------

# The parameters each LabelboxImageAccess mode deploys with (the ids as Labelbox's AWS
# integration shows them: a 12-digit account, an external id).
IMAGE_ACCESS_MODES = {
    "presigned": {"LabelboxImageAccess": "presigned"},
    "delegated": {
        "LabelboxImageAccess": "delegated",
        "LabelboxAwsAccountId": "123456789012",
        "LabelboxExternalId": "cl0example-external-id",
    },
}
LABELBOX_ORIGINS = {"https://app.labelbox.com", "https://editor.labelbox.com"}
SAMPLERS = ("SamplerFunction", "SamplerSweepFunction")


def parameter_values(overrides=None):
    """Every parameter as CloudFormation would see it: its default unless overridden."""
    values = {k: str(p.get("Default", "")) for k, p in T["Parameters"].items()}
    values.update({k: str(v) for k, v in (overrides or {}).items()})
    return values


def holds(expr, values):
    """A condition or rule expression (Fn::Equals/Not/And/Or, Condition) for these values."""
    if isinstance(expr, dict) and len(expr) == 1:
        (k, arg), = expr.items()
        if k == "Ref":
            return values[arg]
        if k == "Condition":
            return holds(T["Conditions"][arg], values)
        if k == "Fn::Equals":
            return str(holds(arg[0], values)) == str(holds(arg[1], values))
        if k == "Fn::Not":
            return not holds(arg[0], values)
        if k == "Fn::And":
            return all(holds(a, values) for a in arg)
        if k == "Fn::Or":
            return any(holds(a, values) for a in arg)
        raise AssertionError(f"holds() does not know {k}")
    return expr


def conditions_for(overrides=None):
    values = parameter_values(overrides)
    return {name: bool(holds(expr, values)) for name, expr in T["Conditions"].items()}


def rendered(value, conditions):
    """`value` with every Fn::If decided by `conditions` and AWS::NoValue dropped."""
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, yes, no = value["Fn::If"]
            return rendered(yes if conditions[name] else no, conditions)
        out = {k: rendered(v, conditions) for k, v in value.items()}
        return {k: v for k, v in out.items() if v != {"Ref": "AWS::NoValue"}}
    if isinstance(value, list):
        return [v for v in (rendered(x, conditions) for x in value) if v != {"Ref": "AWS::NoValue"}]
    return value


def deployed(section, overrides=None, template=None):
    """The resources or outputs of `template` (default: template.yaml after the SAM
    transform) that exist with these parameters, their Fn::Ifs decided."""
    conditions = conditions_for(overrides)
    items = (template or T)[section]
    return {
        k: rendered(v, conditions)
        for k, v in items.items()
        if "Condition" not in v or conditions[v["Condition"]]
    }


def role_statements(role):
    return [
        st
        for pol in role["Properties"].get("Policies", [])
        for st in as_list(pol["PolicyDocument"]["Statement"])
    ]


def image_grants(statements_):
    """Resources of the statements that grant s3:GetObject under captures/images/."""
    return [
        r
        for st in statements_
        if "s3:GetObject" in as_list(st["Action"])
        for r in as_list(st["Resource"])
        if CONSTS["CAPTURE_IMAGES"] in json.dumps(r)
    ]


class LabelboxImageAccess(unittest.TestCase):
    def test_parameters(self):
        p = T["Parameters"]
        mode = p["LabelboxImageAccess"]
        self.assertEqual(set(mode["AllowedValues"]), set(IMAGE_ACCESS_MODES))
        self.assertEqual(mode["Default"], "delegated")
        self.assertRegex(mode["Description"], r"presigned[^.]*credentials")  # why presigned is for tryouts
        account = p["LabelboxAwsAccountId"]
        # Empty by default: no role until Labelbox's ids are known (DelegatedImageAccess).
        self.assertEqual(account["Default"], "")
        for ok in ("", "123456789012"):
            self.assertIsNotNone(re.fullmatch(account["AllowedPattern"], ok), ok)
        for bad in ("12345678901", "1234567890123", "arn:aws:iam::123456789012:root", "12345678901a"):
            self.assertIsNone(re.fullmatch(account["AllowedPattern"], bad), bad)
        external = p["LabelboxExternalId"]
        self.assertEqual(external["Default"], "")
        self.assertNotIn("NoEcho", external)  # not a secret: Labelbox shows it to every admin
        for ok in ("", "cl0example-external-id", "a1b2c3d4-e5f6-7890-abcd-ef1234567890", "x_=,.@:/+-y"):
            self.assertIsNotNone(re.fullmatch(external["AllowedPattern"], ok), ok)
        for bad in ("x", "has space", "semi;colon"):
            self.assertIsNone(re.fullmatch(external["AllowedPattern"], bad), bad)
        # The ids go into the role's trust only: no function gets them (nothing can log them).
        for lid, res in FUNCTIONS.items():
            with self.subTest(lid):
                self.assertEqual(references(env_of(res)) & {"LabelboxAwsAccountId", "LabelboxExternalId"}, set())

    def test_both_samplers_get_the_mode(self):
        for lid in SAMPLERS:
            with self.subTest(lid):
                self.assertEqual(env_of(FUNCTIONS[lid])["LABELBOX_IMAGE_ACCESS"], {"Ref": "LabelboxImageAccess"})
        # Every function that sends Labelbox URLs (it reads their lifetime) knows how to make them.
        sending = {lid for lid, res in FUNCTIONS.items() if "LABELBOX_URL_DAYS" in env_of(res)}
        self.assertEqual(sending, set(SAMPLERS))

    def test_the_conditions_resolve_both_ways(self):
        presigned = conditions_for(IMAGE_ACCESS_MODES["presigned"])
        delegated = conditions_for(IMAGE_ACCESS_MODES["delegated"])
        self.assertEqual((presigned["PresignedImageAccess"], presigned["DelegatedImageAccess"]), (True, False))
        self.assertEqual((delegated["PresignedImageAccess"], delegated["DelegatedImageAccess"]), (False, True))
        # The ids alone do not make a role in presigned mode; delegated mode without them makes none.
        self.assertFalse(conditions_for({**IMAGE_ACCESS_MODES["delegated"], "LabelboxImageAccess": "presigned"})["DelegatedImageAccess"])
        self.assertFalse(conditions_for({"LabelboxImageAccess": "delegated"})["DelegatedImageAccess"])
        self.assertFalse(conditions_for()["DelegatedImageAccess"])  # the defaults: no ids yet
        # Both conditions are used, and only for this.
        self.assertEqual(RES["LabelboxDelegatedAccessRole"]["Condition"], "DelegatedImageAccess")
        self.assertEqual(T["Outputs"]["LabelboxDelegatedAccessRoleArn"]["Condition"], "DelegatedImageAccess")
        self.assertEqual(
            T["Outputs"]["LabelboxDelegatedAccessRoleArn"]["Value"], {"Fn::GetAtt": ["LabelboxDelegatedAccessRole", "Arn"]}
        )

    def test_each_mode_renders_its_resources(self):
        for mode, overrides in IMAGE_ACCESS_MODES.items():
            # SAM's transform with these parameters, then what CloudFormation would keep.
            out = transformed(parameters=overrides)
            resources = deployed("Resources", overrides, out)
            outputs = deployed("Outputs", overrides, out)
            with self.subTest(mode):
                role = "LabelboxDelegatedAccessRole"
                self.assertEqual(role in resources, mode == "delegated")
                self.assertEqual("LabelboxDelegatedAccessRoleArn" in outputs, mode == "delegated")
                # The sampler roles read images only to presign them.
                for lid in SAMPLERS:
                    grants = image_grants(role_statements(resources[f"{lid}Role"]))
                    self.assertEqual(bool(grants), mode == "presigned", lid)
                # CORS in both modes: the editor fetches either kind of URL from another origin.
                rules = resources["DataBucket"]["Properties"]["CorsConfiguration"]["CorsRules"]
                self.assertTrue(any(LABELBOX_ORIGINS <= set(r["AllowedOrigins"]) for r in rules))

    def test_the_template_lints_in_both_modes(self):
        # `sam validate --lint` runs cfn-lint with the parameters' defaults (it takes no
        # overrides), and cfn-lint resolves Fn::Sub with them: lint the template once with
        # each mode's parameters as its defaults, as that command would.
        from cfnlint.api import ManualArgs, lint  # noqa: PLC0415 (cfn-lint comes with aws-sam-cli)

        for mode, overrides in IMAGE_ACCESS_MODES.items():
            t = copy.deepcopy(T)
            for k, v in {**overrides, "LabelingBackend": "labelbox"}.items():
                t["Parameters"][k]["Default"] = v
            with self.subTest(mode):
                matches = lint(json.dumps(t), config=ManualArgs(regions=["us-east-1"]))
                self.assertEqual([str(m) for m in matches], [])

    def test_the_role_trusts_labelbox_with_the_external_id(self):
        doc = RES["LabelboxDelegatedAccessRole"]["Properties"]["AssumeRolePolicyDocument"]
        (st,) = doc["Statement"]
        self.assertEqual(st["Effect"], "Allow")
        self.assertEqual(st["Action"], "sts:AssumeRole")
        self.assertEqual(st["Principal"], {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${LabelboxAwsAccountId}:root"}})
        self.assertEqual(st["Condition"], {"StringEquals": {"sts:ExternalId": {"Ref": "LabelboxExternalId"}}})

    def test_the_role_reads_only_the_images(self):
        statements_ = role_statements(RES["LabelboxDelegatedAccessRole"])
        bucket = {"Fn::GetAtt": ["DataBucket", "Arn"]}
        actions = set()
        for st in statements_:
            self.assertEqual(st["Effect"], "Allow")
            self.assertNotIn("NotAction", st)
            self.assertNotIn("NotResource", st)
            for a in as_list(st["Action"]):
                actions.add(a)
                self.assertNotIn("*", a, "no wildcard actions")
            objects = [r for r in as_list(st["Resource"]) if r != bucket]
            if "s3:GetObject" in as_list(st["Action"]):
                self.assertEqual(as_list(st["Action"]), ["s3:GetObject"])
                # Only the images: the prefix of every key keys::capture_image makes, which is
                # the key the sampler sends (capture.image.key, EXTRA_PREFIXES' evidence).
                self.assertEqual(objects, [{"Fn::Sub": "${DataBucket.Arn}/" + CONSTS["CAPTURE_IMAGES"] + "*"}])
                self.assertEqual(KEY_FNS["capture_image"], CONSTS["CAPTURE_IMAGES"])
            else:
                self.assertEqual(set(as_list(st["Action"])), {"s3:ListBucket", "s3:GetBucketLocation"})
                self.assertEqual(as_list(st["Resource"]), [bucket], "bucket actions on the bucket only")
        self.assertEqual(actions, {"s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"})
        self.assertNotIn("ManagedPolicyArns", RES["LabelboxDelegatedAccessRole"]["Properties"])

    def test_the_bucket_lets_the_labelbox_editor_fetch_images(self):
        props = RES["DataBucket"]["Properties"]
        (rule,) = props["CorsConfiguration"]["CorsRules"]  # unconditional: both modes
        self.assertEqual(set(rule["AllowedOrigins"]), LABELBOX_ORIGINS)
        self.assertIn("GET", rule["AllowedMethods"])
        self.assertLessEqual(set(rule["AllowedMethods"]), {"GET", "HEAD"}, "read-only")
        self.assertEqual(rule["AllowedHeaders"], ["*"])
        # Still private: CORS lets those pages read what a signature already allows.
        self.assertTrue(all(props["PublicAccessBlockConfiguration"].values()))

    def test_delegated_labelbox_needs_labelboxs_ids(self):
        (name, rule), = T["Rules"].items()

        def passes(overrides):
            values = parameter_values(overrides)
            if not holds(rule["RuleCondition"], values):
                return True
            return all(holds(a["Assert"], values) for a in rule["Assertions"])

        ids = {k: IMAGE_ACCESS_MODES["delegated"][k] for k in ("LabelboxAwsAccountId", "LabelboxExternalId")}
        labelbox = {"LabelingBackend": "labelbox"}
        self.assertTrue(passes({}), "the defaults (local queue, no ids) deploy")
        self.assertTrue(passes({**labelbox, "LabelboxImageAccess": "presigned"}))
        self.assertTrue(passes({**labelbox, **IMAGE_ACCESS_MODES["delegated"]}))
        self.assertFalse(passes(labelbox), "delegated Labelbox rows without a role to read them")
        for k in ids:
            with self.subTest(only=k):
                self.assertFalse(passes({k: ids[k]}), "one id without the other makes no role")
                self.assertFalse(passes({**labelbox, k: ids[k]}))


# --- rollout -------------------------------------------------------------------------------

# The functions CodeDeploy rolls out: both run the detector and read MODEL_REF.
ROLLED_OUT = ("InferenceFunction", "InferenceUploadFunction")
ALIAS = "live"
# SAM's DeploymentPreference types for Lambda: CodeDeploy's predefined configurations
# CodeDeployDefault.Lambda<type> (SAM's docs/safe_lambda_deployments.rst).
LAMBDA_DEPLOYMENT_TYPES = {
    "AllAtOnce",
    "Canary10Percent5Minutes",
    "Canary10Percent10Minutes",
    "Canary10Percent15Minutes",
    "Canary10Percent30Minutes",
    "Linear10PercentEvery1Minute",
    "Linear10PercentEvery2Minutes",
    "Linear10PercentEvery3Minutes",
    "Linear10PercentEvery10Minutes",
}


def dims_of(alarm):
    return {d["Name"]: d["Value"] for d in alarm["Properties"]["Dimensions"]}


class Rollout(unittest.TestCase):
    def test_deployment_type_is_one_of_codedeploys(self):
        p = T["Parameters"]["DeploymentType"]
        self.assertEqual(sorted(p["AllowedValues"]), sorted(LAMBDA_DEPLOYMENT_TYPES))
        self.assertEqual(p["Default"], "Canary10Percent5Minutes")
        # SAM resolves the parameter into each deployment group's configuration.
        for value in ("AllAtOnce", "Linear10PercentEvery1Minute"):
            out = transformed(parameters={"DeploymentType": value})["Resources"]
            for lid in ROLLED_OUT:
                with self.subTest(lid, value=value):
                    self.assertEqual(
                        out[f"{lid}DeploymentGroup"]["Properties"]["DeploymentConfigName"],
                        {"Fn::Sub": ["CodeDeployDefault.Lambda${ConfigName}", {"ConfigName": value}]},
                    )

    def test_inference_functions_roll_out_behind_their_alias(self):
        out = transformed()["Resources"]
        for lid in ROLLED_OUT:
            props = FUNCTIONS[lid]["Properties"]
            with self.subTest(lid):
                self.assertEqual(props["AutoPublishAlias"], ALIAS)
                dp = props["DeploymentPreference"]
                self.assertEqual(dp["Type"], {"Ref": "DeploymentType"})
                self.assertNotIn("Enabled", dp)
                alarms = [a["Ref"] for a in dp["Alarms"]]
                self.assertIn("AP50Alarm", alarms)  # the serving model's quality (test_ap50_alarm)
                errors = [a for a in alarms if RES[a]["Properties"]["Namespace"] == "AWS/Lambda"]
                self.assertEqual(len(errors), 1, "one alarm on the new version's errors")
                alarm = RES[errors[0]]
                self.assertEqual(alarm["Properties"]["MetricName"], "Errors")
                # The dimensions Lambda publishes for invocations through an alias.
                self.assertEqual(
                    dims_of(alarm),
                    {
                        "FunctionName": {"Ref": lid},
                        "Resource": {"Fn::Sub": f"${{{lid}}}:{ALIAS}"},
                        "ExecutedVersion": {"Fn::GetAtt": [lid, "Version.Version"]},
                    },
                )
                p = alarm["Properties"]
                self.assertEqual((p["Statistic"], p["Threshold"], p["ComparisonOperator"]), ("Sum", 0, "GreaterThanThreshold"))
                self.assertEqual(p["TreatMissingData"], "notBreaching")  # no traffic yet is no failure
                # After the transform: the alarm watches the version the alias is shifted to,
                # and the alias moves through the deployment group that watches the alarms.
                alias = out[f"{lid}Alias{ALIAS}"]
                version = alias["Properties"]["FunctionVersion"]
                self.assertEqual(out[version["Fn::GetAtt"][0]]["Type"], "AWS::Lambda::Version")
                self.assertEqual(dims_of(out[errors[0]])["ExecutedVersion"], version)
                self.assertEqual(
                    alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]["DeploymentGroupName"],
                    {"Ref": f"{lid}DeploymentGroup"},
                )
                group = out[f"{lid}DeploymentGroup"]["Properties"]
                self.assertEqual(group["AlarmConfiguration"], {"Enabled": True, "Alarms": [{"Name": a} for a in dp["Alarms"]]})
                self.assertIn("DEPLOYMENT_STOP_ON_ALARM", group["AutoRollbackConfiguration"]["Events"])

    def test_every_deployment_alarm_is_an_alarm_of_this_template(self):
        seen = 0
        for lid, res in FUNCTIONS.items():
            dp = res["Properties"].get("DeploymentPreference")
            if dp is None:
                continue
            with self.subTest(lid):
                self.assertIn("AutoPublishAlias", res["Properties"])  # SAM refuses one without
                for a in dp.get("Alarms", []):
                    seen += 1
                    # By Ref: a literal name passes every lint and may watch nothing.
                    self.assertEqual(list(a), ["Ref"], a)
                    target = RES.get(a["Ref"])
                    self.assertIsNotNone(target, f"{a['Ref']} is not a resource of the template")
                    self.assertEqual(target["Type"], "AWS::CloudWatch::Alarm")
                    self.assertNotIn("Condition", target, "an alarm that may not exist cannot stop a rollout")
        self.assertGreater(seen, 0)
        alarms = {lid for lid, r in RES.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
        body = RES["QualityDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
        self.assertEqual({n for n in re.findall(r"\$\{(\w+)\.Arn\}", body) if n in alarms}, alarms, "the dashboard's alarm widget")

    def test_a_parameter_change_publishes_a_version(self):
        from cfnlint.schema import PROVIDER_SCHEMA_MANAGER  # noqa: PLC0415 (cfn-lint comes with aws-sam-cli)

        schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", "AWS::Lambda::Version").schema
        # A changed Description replaces the version resource: CloudFormation publishes a new one.
        self.assertIn("/properties/Description", schema["createOnlyProperties"])
        limit = schema["properties"]["Description"]["maxLength"]
        for lid in ROLLED_OUT:
            res = FUNCTIONS[lid]
            props = res["Properties"]
            with self.subTest(lid):
                self.assertIs(props["AutoPublishAliasAllProperties"], True)
                text = props["VersionDescription"]["Fn::Sub"]
                carried = re.findall(r"\$\{([^}]+)\}", text)
                self.assertLessEqual(set(carried), set(T["Parameters"]), carried)
                read = {r for r in references(env_of(res)) if r in T["Parameters"]}
                self.assertEqual(read - set(carried), set(), "changing these would leave the alias on the old version")
                self.assertEqual(set(carried) - read, set(), "carried, but the environment does not read them")
                longest = len(re.sub(r"\$\{[^}]+\}", "", text))
                for name in carried:
                    p = T["Parameters"][name]
                    bound = max(len(str(v)) for v in p["AllowedValues"]) if "AllowedValues" in p else p.get("MaxLength")
                    self.assertIsNotNone(bound, f"{name} needs a MaxLength (or AllowedValues): it is in a VersionDescription")
                    longest += int(bound)
                self.assertLessEqual(longest, limit, "VersionDescription at its longest")
                for layer in props["Layers"]:
                    self.assertIs(RES[layer["Ref"]]["Properties"].get("PublishLambdaVersion"), True, layer)
        # Why it is needed: SAM's version id hashes the properties as written, so two values of a
        # parameter give one id (aws/serverless-application-model#1640, #3820). Should this
        # fail, SAM sees parameter values now: the VersionDescription may go.
        ids = []
        for value in ("a/1", "a/2"):
            out = transformed(parameters={"ServingModelRef": value})["Resources"]
            ids.append(sorted(k for k, v in out.items() if v["Type"] == "AWS::Lambda::Version"))
            for lid in ROLLED_OUT:
                version = out[out[f"{lid}Alias{ALIAS}"]["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]]
                self.assertEqual(version["Properties"]["Description"], FUNCTIONS[lid]["Properties"]["VersionDescription"])
        self.assertEqual(ids[0], ids[1], "SAM's version ids follow parameter values now")

    def test_callers_reach_the_alias_only(self):
        out = transformed()["Resources"]
        for lid in ROLLED_OUT:
            alias = {"Ref": f"{lid}Alias{ALIAS}"}
            direct = ({"Ref": lid}, {"Fn::GetAtt": [lid, "Arn"]})
            reached = 0
            for rid, r in out.items():
                p = r.get("Properties", {})
                with self.subTest(lid, resource=rid):
                    if r["Type"] == "AWS::Lambda::Permission":
                        self.assertNotIn(p["FunctionName"], direct, "invokes $LATEST, not the alias")
                        reached += p["FunctionName"] == alias
                    elif r["Type"] == "AWS::Lambda::Url":
                        self.assertNotIn(p["TargetFunctionArn"], direct)
                    elif r["Type"] == "AWS::Lambda::EventInvokeConfig" and p["FunctionName"] == {"Ref": lid}:
                        self.assertEqual(p["Qualifier"], ALIAS)
                    elif r["Type"] == "AWS::S3::Bucket":
                        for c in p.get("NotificationConfiguration", {}).get("LambdaConfigurations", []):
                            self.assertNotIn(c["Function"], direct)
            self.assertGreater(reached, 0, f"nothing may invoke {lid}'s alias")
        self.assertEqual(out["InferenceFunctionUrl"]["Properties"]["TargetFunctionArn"], {"Ref": f"InferenceFunctionAlias{ALIAS}"})
        api = json.dumps(out["InferenceHttpApi"]["Properties"]["Body"])
        self.assertNotIn("${InferenceFunction.Arn}", api)
        self.assertEqual(api.count(f"${{InferenceFunctionAlias{ALIAS}}}"), 2)  # /predict, /health


def transformed(template=None, parameters=None):
    """The template after the SAM transform, local paths replaced by S3 URIs as
    `sam package` would; `parameters` as CloudFormation would pass them (the rest at
    their defaults)."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from samtranslator.translator.transform import transform  # noqa: PLC0415

    class NoManagedPolicies:
        def load(self):
            return {}

    t = copy.deepcopy(template or T)
    for lid, res in t["Resources"].items():
        for k in ("CodeUri", "ContentUri"):
            if k in res.get("Properties", {}):
                res["Properties"][k] = f"s3://packaged/{lid}.zip"
    return transform(t, dict(parameters or {}), NoManagedPolicies())


def references(value):
    """Logical ids a CloudFormation value refers to."""
    out = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" and isinstance(v, str):
                out.add(v)
            elif k == "Fn::GetAtt":
                out.add(v[0] if isinstance(v, list) else v.split(".")[0])
            elif k == "Fn::Sub":
                text = v if isinstance(v, str) else v[0]
                out |= {n.split(".")[0] for n in re.findall(r"\$\{([^!}][^}]*)\}", text)}
                if not isinstance(v, str):
                    out |= references(v[1])
            else:
                out |= references(v)
    elif isinstance(value, list):
        for v in value:
            out |= references(v)
    return out


def find_cycle(resources):
    graph = {}
    for lid, res in resources.items():
        deps = references(res.get("Properties", {})) | set(as_list(res.get("DependsOn", [])))
        graph[lid] = {d for d in deps if d in resources}
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


# --- LocalStack --------------------------------------------------------------------------


def expected_local(stack):
    """The local stack as this test reads the template, independently of cfn.plan."""
    subs = {"AWS::StackName": stack}

    def name(lid):
        return re.sub(r"\$\{([^}]+)\}", lambda m: subs[m.group(1)], RES[lid]["Properties"]["QueueName"]["Fn::Sub"])

    queues = {}
    for lid, res in RES.items():
        if res["Type"] != "AWS::SQS::Queue":
            continue
        p = res["Properties"]
        q = {k: str(p[k]) for k in ("VisibilityTimeout", "MessageRetentionPeriod") if k in p}
        if "RedrivePolicy" in p:
            q["dlq"] = name(p["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0])
            q["maxReceiveCount"] = str(p["RedrivePolicy"]["maxReceiveCount"])
        queues[name(lid)] = q
    notifications = set()
    for lid, res in FUNCTIONS.items():
        for ev in s3_events(res).values():
            qname = f"{stack}-{cfn.binary(res)}-events"
            rules = {r["Name"].lower(): r["Value"] for r in ev["Filter"]["S3Key"]["Rules"]}
            notifications.add((qname, tuple(as_list(ev["Events"])), rules.get("prefix", ""), rules.get("suffix", "")))
            queues[qname] = {"VisibilityTimeout": str(cfn.function_setting(T, res, "Timeout"))}
    return queues, notifications


@unittest.skipUnless(
    os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MODELOBS_REQUIRE_LOCALSTACK") == "1",
    "no AWS_ENDPOINT_URL: run under localstack/with-stack",
)
class LocalStackMatchesTemplate(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import boto3  # noqa: PLC0415

        kw = {"endpoint_url": os.environ.get("AWS_ENDPOINT_URL"), "region_name": "us-east-1"}
        cls.sqs = boto3.client("sqs", **kw)
        cls.s3 = boto3.client("s3", config=boto3.session.Config(s3={"addressing_style": "path"}), **kw)
        cls.bucket = os.environ.get("DATA_BUCKET", "modelobs-data")
        cls.stack = os.environ.get("MODELOBS_STACK", "modelobs")
        cls.queues, cls.notifications = expected_local(cls.stack)

    def url(self, name):
        return self.sqs.get_queue_url(QueueName=name)["QueueUrl"]

    def test_queues_and_redrive(self):
        self.assertEqual(len(self.queues), 6)
        for name, want in self.queues.items():
            with self.subTest(queue=name):
                got = self.sqs.get_queue_attributes(QueueUrl=self.url(name), AttributeNames=["All"])["Attributes"]
                for k in ("VisibilityTimeout", "MessageRetentionPeriod"):
                    if k in want:
                        self.assertEqual(got[k], want[k], k)
                if "dlq" in want:
                    rp = json.loads(got["RedrivePolicy"])
                    self.assertEqual(rp["deadLetterTargetArn"].rsplit(":", 1)[1], want["dlq"])
                    self.assertEqual(str(rp["maxReceiveCount"]), want["maxReceiveCount"])
                else:
                    self.assertNotIn("RedrivePolicy", got)

    def test_bucket_notifications(self):
        conf = self.s3.get_bucket_notification_configuration(Bucket=self.bucket)
        got = set()
        for q in conf.get("QueueConfigurations", []):
            rules = {r["Name"].lower(): r["Value"] for r in q.get("Filter", {}).get("Key", {}).get("FilterRules", [])}
            got.add((q["QueueArn"].rsplit(":", 1)[1], tuple(q["Events"]), rules.get("prefix", ""), rules.get("suffix", "")))
        self.assertEqual(got, self.notifications)
        self.assertFalse(conf.get("LambdaFunctionConfigurations"))

    def test_env_file_names_every_queue(self):
        env_file = os.path.join(os.environ.get("LOCALSTACK_STATE", os.path.join(ROOT, ".cache/localstack")), "resources.env")
        lines = dict(line.strip().split("=", 1) for line in slurp(env_file).splitlines() if "=" in line)
        urls = {v for k, v in lines.items() if k.endswith("_QUEUE_URL") or k.endswith("_DLQ_URL")}
        self.assertEqual(urls, {self.url(n) for n in self.queues})
        for k in ("METRICS_QUEUE_URL", "METRICS_DLQ_URL", "SAMPLER_EVENTS_QUEUE_URL", "UPLOAD_EVENTS_QUEUE_URL"):
            self.assertIn(k, lines)
        routes = json.loads(slurp(lines["MODELOBS_ROUTES"]))
        self.assertEqual({r["binary"] for r in routes["sqs_routes"]}, {"metrics"})
        self.assertEqual({r["binary"] for r in routes["s3_routes"]}, {"sampler", "inference-upload"})

    def drain(self, name, want, timeout=10):
        """Keys of the S3 events that arrive on `name` until `want` keys came or time is up."""
        url, keys, deadline = self.url(name), [], time.time() + timeout
        while len(keys) < want and time.time() < deadline:
            for m in self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
                body = json.loads(m["Body"])
                # Keys arrive URL-encoded, as from AWS (keys::decode_event_key).
                keys += [urllib.parse.unquote_plus(r["s3"]["object"]["key"]) for r in body.get("Records", [])]
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return keys

    def test_objects_reach_the_stand_in_queues(self):
        tag = uuid.uuid4().hex[:8]
        put = {
            f"incoming/{tag}.jpg": f"{self.stack}-inference-upload-events",
            f"captures/predictions/dt=2026-11-26/hr=07/{tag}.json": f"{self.stack}-sampler-events",
            # filtered out: wrong suffix, and a prefix no trigger watches
            f"captures/predictions/dt=2026-11-26/hr=07/{tag}.txt": None,
            f"captures/images/dt=2026-11-26/hr=07/{tag}.jpg": None,
        }
        for key in put:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=b"x")
        try:
            for qname in {q for q in put.values() if q}:
                # Read past the first hit: a mis-filtered extra event would show up here.
                got = [k for k in self.drain(qname, want=10, timeout=4) if tag in k]
                self.assertEqual(got, [k for k, q in put.items() if q == qname], qname)
        finally:
            for key in put:
                self.s3.delete_object(Bucket=self.bucket, Key=key)


if __name__ == "__main__":
    unittest.main(verbosity=2)
