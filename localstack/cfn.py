"""template.yaml, read for the local stack: what LocalStack must hold so that the
functions, run by `cargo lambda watch` and the event router, see what they would
see in AWS.

Needs PyYAML (a dependency of localstack-core, so the LocalStack venv has it; the
SAM venv has it too). CloudFormation's short tags (!Ref, !Sub, !GetAtt, ...)
become their long JSON forms ({"Ref": ...}, {"Fn::Sub": ...}).

    python localstack/cfn.py [--stack modelobs]   # print the local plan as JSON

Local stand-ins, because LocalStack runs no Lambda here:
- every direct S3 -> Lambda trigger becomes an S3 -> SQS notification with the same
  events and key filters, on a queue `<stack>-<binary>-events`; the router invokes
  the function from it the way Lambda's asynchronous invocation would (retries,
  then the function's on-failure destination);
- every SQS event source is the template's own queue; the router polls it;
- every schedule is listed with its expression; the router fires it.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.environ.get("MODELOBS_TEMPLATE") or os.path.join(ROOT, "template.yaml")
LOCAL_ACCOUNT = "000000000000"
LOCAL_REGION = "us-east-1"

# The queue properties we translate into SQS attributes. Anything else on a queue is
# an error here, so a setting added to the template cannot silently go missing locally.
QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
)
# Accepted and not reproduced locally (LocalStack does not encrypt).
QUEUE_IGNORED = ("SqsManagedSseEnabled",)

# Environment variable names for the local queue URLs (what `localstack/up` prints).
# A queue or S3 trigger the template gains must get a name here: init.py refuses one
# without.
QUEUE_ENV = {
    "MetricsQueue": "METRICS_QUEUE_URL",
    "MetricsDeadLetterQueue": "METRICS_DLQ_URL",
    "SamplerFailureQueue": "SAMPLER_FAILURE_QUEUE_URL",
    "InferenceUploadFailureQueue": "UPLOAD_FAILURE_QUEUE_URL",
}
EVENTS_QUEUE_ENV = {
    "SamplerFunction": "SAMPLER_EVENTS_QUEUE_URL",
    "InferenceUploadFunction": "UPLOAD_EVENTS_QUEUE_URL",
}


class TemplateError(Exception):
    pass


def _loader():
    import yaml  # noqa: PLC0415 (imported late: a clear message when it is missing)

    class Loader(yaml.SafeLoader):
        pass

    def construct(tag):
        name = "Ref" if tag == "Ref" else "Condition" if tag == "Condition" else "Fn::" + tag

        def ctor(loader, node):
            if isinstance(node, yaml.ScalarNode):
                value = loader.construct_scalar(node)
                if tag == "GetAtt":
                    value = value.split(".", 1)
            elif isinstance(node, yaml.SequenceNode):
                value = loader.construct_sequence(node, deep=True)
            else:
                value = loader.construct_mapping(node, deep=True)
            return {name: value}

        return ctor

    for tag in (
        "Ref", "Condition", "Sub", "GetAtt", "If", "Equals", "Not", "And", "Or",
        "Join", "Select", "Split", "FindInMap", "GetAZs", "ImportValue", "Base64", "Cidr",
    ):
        Loader.add_constructor("!" + tag, construct(tag))
    return Loader


def load(path=TEMPLATE):
    """The template as a dict, intrinsic functions in their long form."""
    try:
        import yaml  # noqa: F401, PLC0415
    except ImportError:
        sys.exit(
            f"{os.path.basename(__file__)}: PyYAML is missing in {sys.executable}; "
            "run this with the LocalStack venv (.cache/venv-localstack) or the SAM venv "
            "(bash scripts/sam.sh --python)"
        )
    import yaml  # noqa: PLC0415

    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_loader())  # noqa: S506 (a SafeLoader subclass)


def queue_arn(name, account=LOCAL_ACCOUNT, region=LOCAL_REGION):
    return f"arn:aws:sqs:{region}:{account}:{name}"


class Resolver:
    """Just enough of CloudFormation to name things locally: parameters at their
    defaults, pseudo parameters, Ref/GetAtt of queues, Fn::Sub."""

    def __init__(self, template, stack, account=LOCAL_ACCOUNT, region=LOCAL_REGION):
        self.template = template
        self.resources = template.get("Resources", {})
        self.pseudo = {
            "AWS::StackName": stack,
            "AWS::AccountId": account,
            "AWS::Region": region,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.account, self.region = account, region

    def ref(self, name):
        if name in self.pseudo:
            return self.pseudo[name]
        params = self.template.get("Parameters", {})
        if name in params:
            return str(params[name].get("Default", ""))
        res = self.resources.get(name)
        if res and res["Type"] == "AWS::SQS::Queue":
            return f"local-queue-url:{self.queue_name(name)}"  # only names matter locally
        raise TemplateError(f"cannot resolve Ref {name} locally")

    def get_att(self, name, attr):
        res = self.resources.get(name)
        if res and res["Type"] == "AWS::SQS::Queue":
            if attr == "Arn":
                return queue_arn(self.queue_name(name), self.account, self.region)
            if attr == "QueueName":
                return self.queue_name(name)
        raise TemplateError(f"cannot resolve GetAtt {name}.{attr} locally")

    def queue_name(self, logical_id):
        props = self.resources[logical_id].get("Properties", {})
        if "QueueName" not in props:
            raise TemplateError(f"{logical_id}: give the queue a QueueName (the local stack uses it)")
        return self.value(props["QueueName"])

    def value(self, v):
        if isinstance(v, dict) and len(v) == 1:
            (k, arg), = v.items()
            if k == "Ref":
                return self.ref(arg)
            if k == "Fn::GetAtt":
                return self.get_att(*arg)
            if k == "Fn::Sub":
                return self.sub(arg)
        if isinstance(v, (dict, list)):
            raise TemplateError(f"cannot resolve {json.dumps(v)} locally")
        return v

    def sub(self, arg):
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        out, i = [], 0
        while True:
            j = text.find("${", i)
            if j < 0:
                out.append(text[i:])
                return "".join(out)
            k = text.index("}", j)
            out.append(text[i:j])
            name = text[j + 2 : k]
            if name.startswith("!"):
                out.append("${" + name[1:] + "}")
            elif name in extra:
                out.append(str(self.value(extra[name])))
            elif "." in name and name.split(".", 1)[0] in self.resources:
                out.append(str(self.get_att(*name.split(".", 1))))
            else:
                out.append(str(self.ref(name)))
            i = k + 1


def functions(template):
    """(logical id, resource) of every AWS::Serverless::Function."""
    return [
        (lid, res)
        for lid, res in template.get("Resources", {}).items()
        if res.get("Type") == "AWS::Serverless::Function"
    ]


def binary(res):
    return res.get("Metadata", {}).get("BuildProperties", {}).get("Binary")


def function_setting(template, res, key):
    """A function property with the Globals default."""
    props = res.get("Properties", {})
    if key in props:
        return props[key]
    return template.get("Globals", {}).get("Function", {}).get(key)


def s3_filter(event_props):
    rules = event_props.get("Filter", {}).get("S3Key", {}).get("Rules", [])
    by_name = {r["Name"].lower(): r["Value"] for r in rules}
    unknown = set(by_name) - {"prefix", "suffix"}
    if unknown:
        raise TemplateError(f"unknown S3 key filter rule(s) {sorted(unknown)}")
    return by_name.get("prefix", ""), by_name.get("suffix", "")


def plan(template, stack="modelobs", bucket=None):
    """What the local stack holds, as plain data (init.py creates it; the event router
    reads it as routes.json)."""
    r = Resolver(template, stack)
    res_all = template.get("Resources", {})
    queues = []
    for lid, res in res_all.items():
        if res.get("Type") != "AWS::SQS::Queue":
            continue
        props = dict(res.get("Properties", {}))
        unknown = set(props) - {"QueueName", "RedrivePolicy"} - set(QUEUE_ATTRIBUTES) - set(QUEUE_IGNORED)
        if unknown:
            raise TemplateError(f"{lid}: no local equivalent for {sorted(unknown)} (teach localstack/cfn.py)")
        if lid not in QUEUE_ENV:
            raise TemplateError(f"{lid}: name its local URL variable in QUEUE_ENV (localstack/cfn.py)")
        attributes = {k: str(r.value(props[k])) for k in QUEUE_ATTRIBUTES if k in props}
        if "RedrivePolicy" in props:
            rp = props["RedrivePolicy"]
            attributes["RedrivePolicy"] = {
                "deadLetterTargetArn": r.value(rp["deadLetterTargetArn"]),
                "maxReceiveCount": int(r.value(rp["maxReceiveCount"])),
            }
        queues.append(
            {"logical_id": lid, "name": r.queue_name(lid), "env": QUEUE_ENV[lid], "attributes": attributes}
        )

    notifications, s3_routes, sqs_routes, schedules = [], [], [], []
    for lid, res in functions(template):
        props = res.get("Properties", {})
        timeout = int(function_setting(template, res, "Timeout") or 3)
        for ev_name, ev in (props.get("Events") or {}).items():
            kind, ep = ev["Type"], ev.get("Properties", {})
            if kind == "S3":
                if lid not in EVENTS_QUEUE_ENV:
                    raise TemplateError(f"{lid}: name its local events queue variable in EVENTS_QUEUE_ENV")
                prefix, suffix = s3_filter(ep)
                events = ep["Events"] if isinstance(ep["Events"], list) else [ep["Events"]]
                name = f"{stack}-{binary(res)}-events"
                invoke = props.get("EventInvokeConfig", {})
                on_failure = invoke.get("DestinationConfig", {}).get("OnFailure", {})
                failure_arn = r.value(on_failure["Destination"]) if on_failure else None
                max_age = int(invoke.get("MaximumEventAgeInSeconds", 21600))
                queues.append(
                    {
                        "logical_id": f"{lid}.{ev_name}",
                        "name": name,
                        "env": EVENTS_QUEUE_ENV[lid],
                        # A message the router took but never finished reappears once
                        # the function would have timed out; events older than
                        # Lambda's maximum event age are dropped, as Lambda would.
                        "attributes": {"VisibilityTimeout": str(timeout), "MessageRetentionPeriod": str(max_age)},
                    }
                )
                notifications.append(
                    {"function": lid, "binary": binary(res), "queue": name, "events": events,
                     "prefix": prefix, "suffix": suffix}
                )
                s3_routes.append(
                    {
                        "function": lid,
                        "binary": binary(res),
                        "queue": name,
                        "attempts": 1 + int(invoke.get("MaximumRetryAttempts", 2)),
                        "max_event_age_s": max_age,
                        "on_failure_queue": failure_arn.rsplit(":", 1)[1] if failure_arn else None,
                        "timeout_s": timeout,
                    }
                )
            elif kind == "SQS":
                arn = r.value(ep["Queue"])
                sqs_routes.append(
                    {
                        "function": lid,
                        "binary": binary(res),
                        "queue": arn.rsplit(":", 1)[1],
                        "batch_size": int(ep.get("BatchSize", 10)),
                        "report_batch_item_failures": "ReportBatchItemFailures" in ep.get("FunctionResponseTypes", []),
                        "timeout_s": timeout,
                    }
                )
            elif kind in ("Schedule", "ScheduleV2"):
                schedules.append(
                    {"function": lid, "binary": binary(res), "schedule": ep.get("Schedule") or ep.get("ScheduleExpression")}
                )
    return {
        "stack": stack,
        "bucket": bucket or os.environ.get("DATA_BUCKET", "modelobs-data"),
        "queues": queues,
        "notifications": notifications,
        "s3_routes": s3_routes,
        "sqs_routes": sqs_routes,
        "schedules": schedules,
    }


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stack", default=os.environ.get("MODELOBS_STACK", "modelobs"))
    ap.add_argument("--template", default=TEMPLATE)
    args = ap.parse_args()
    print(json.dumps(plan(load(args.template), args.stack), indent=2))
