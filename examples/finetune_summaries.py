"""Fine-tune a chat model to summarize dialogues, with boto3 alone, against `tuneforge serve`.

The flow of the public Bedrock notebook (generative-ai-on-aws 12_bedrock/27_*): prompt/completion JSONL built
from DialogSum with the reference prompt, uploaded to S3 (or a local path), a FINE_TUNING job with Bedrock's
string hyperparameters, a provisioned throughput on the custom model, and the same hotel check-in dialogue
asked of the base model and of the custom model.

    tuneforge serve &                     # another terminal
    python examples/finetune_summaries.py --data ../shared/data/dialogsum/train.jsonl --records 1000
    python examples/finetune_summaries.py --data train.jsonl --output s3://my-bucket/tuneforge/   # data via S3

Credentials come from boto3's usual chain (a key from `tuneforge keys create`, or anything against a server
started with --no-auth). The defaults mirror the notebook (epochCount "1", batchSize "1", learningRate
"0.000005"); on a CPU, `--batch-size 8 --learning-rate 0.0002` trains the small default model in minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3

PROMPT = "Summarize the simplest and most interesting part of the following conversation.\n\n{dialogue}\n\nSummary: "
HOTEL = """#Person1#: Hello, I'd like to check in. I have a reservation under John Sandals.
#Person2#: Good evening, Mr. Sandals. Yes, a double room for two nights. Could I have a credit card, please?
#Person1#: Sure, here is my American Express.
#Person2#: I'm sorry, sir, we only accept MasterCard or VISA.
#Person1#: No problem, here's my VISA.
#Person2#: Thank you. You're in room 507 on the fifth floor. Here is your key card.
#Person1#: Thanks. What time is breakfast?
#Person2#: From seven to ten in the restaurant on the ground floor."""
ROLE = "arn:aws:iam::123456789012:role/tuneforge-examples"  # required by the API shape; tuneforge records it


def build_dataset(source: Path, records: int, out: Path) -> int:
    """DialogSum-style rows {"dialogue", "summary"} -> {"prompt", "completion"} lines."""
    written = 0
    with open(source, encoding="utf-8") as rows, open(out, "w", encoding="utf-8") as sink:
        for line in rows:
            if written == records:
                break
            row = json.loads(line)
            sink.write(json.dumps({"prompt": PROMPT.format(dialogue=row["dialogue"]), "completion": row["summary"]}) + "\n")
            written += 1
    return written


def upload(path: Path, output: str) -> str:
    """The training file's URI: uploaded under an s3:// output prefix, else the local file itself."""
    if not output.startswith("s3://"):
        return str(path.resolve())
    bucket, _, prefix = output.removeprefix("s3://").partition("/")
    key = f"{prefix.rstrip('/')}/{path.name}".lstrip("/")
    boto3.client("s3").upload_file(str(path), bucket, key)
    return f"s3://{bucket}/{key}"


def wait(describe, done: set[str], what: str, timeout: float) -> dict:
    deadline, last = time.monotonic() + timeout, None
    while True:
        state = describe()
        if state["status"] != last:
            print(f"  {what}: {state['status']}", flush=True)
            last = state["status"]
        if state["status"] in done:
            return state
        if time.monotonic() > deadline:
            sys.exit(f"{what} still {state['status']} after {timeout:.0f}s")
        time.sleep(2)


def ask(runtime, model_id: str, dialogue: str, max_tokens: int) -> str:
    body = json.dumps({"prompt": PROMPT.format(dialogue=dialogue), "max_gen_len": max_tokens, "temperature": 0})
    return json.loads(runtime.invoke_model(modelId=model_id, body=body)["body"].read())["generation"].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint-url", default=os.environ.get("TUNEFORGE_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    parser.add_argument("--base-model", default="huggingfacetb.smollm2-135m-instruct-v1", help="a catalog id, e.g. an alias meta.llama2-13b-v1:0:4k")
    parser.add_argument("--data", type=Path, required=True, help="DialogSum-style JSONL with dialogue and summary fields")
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--output", default=str(Path(tempfile.gettempdir()) / "tuneforge-examples"), help="local dir or s3://bucket/prefix")
    parser.add_argument("--epochs", default="1")
    parser.add_argument("--batch-size", default="1")
    parser.add_argument("--learning-rate", default="0.000005")
    parser.add_argument("--max-sequence-length", default=None, help="ours, e.g. 512 for short runs")
    parser.add_argument("--max-tokens", type=int, default=100)
    parser.add_argument("--dialogue", type=Path, default=None, help="a text file with the dialogue to ask about (default: the hotel check-in)")
    parser.add_argument("--timeout", type=float, default=3 * 3600)
    args = parser.parse_args()
    dialogue = args.dialogue.read_text(encoding="utf-8").strip() if args.dialogue else HOTEL

    bedrock = boto3.client("bedrock", endpoint_url=args.endpoint_url, region_name=args.region)
    runtime = boto3.client("bedrock-runtime", endpoint_url=args.endpoint_url, region_name=args.region)
    run = uuid.uuid4().hex[:8]

    print("1. the base model, asked to summarize the dialogue", flush=True)
    base_answer = ask(runtime, args.base_model, dialogue, args.max_tokens)
    print(f"  {base_answer}\n")

    print("2. training data", flush=True)
    work = Path(tempfile.mkdtemp(prefix="tuneforge-ft-"))
    count = build_dataset(args.data, args.records, work / "train.jsonl")
    training_uri = upload(work / "train.jsonl", args.output)
    print(f"  {count} records -> {training_uri}")

    print("3. the fine-tuning job", flush=True)
    hyperparameters = {"epochCount": args.epochs, "batchSize": args.batch_size, "learningRate": args.learning_rate}
    if args.max_sequence_length:
        hyperparameters["maxSequenceLength"] = args.max_sequence_length
    job_arn = bedrock.create_model_customization_job(
        jobName=f"summaries-{run}", customModelName=f"summarizer-{run}", roleArn=ROLE,
        baseModelIdentifier=args.base_model, customizationType="FINE_TUNING",
        trainingDataConfig={"s3Uri": training_uri}, outputDataConfig={"s3Uri": args.output},
        hyperParameters=hyperparameters,
    )["jobArn"]
    job = wait(lambda: bedrock.get_model_customization_job(jobIdentifier=job_arn), {"Completed", "Failed", "Stopped"}, "job", args.timeout)
    if job["status"] != "Completed":
        sys.exit(f"the job ended {job['status']}: {job.get('failureMessage')}")
    model = bedrock.get_custom_model(modelIdentifier=job["outputModelArn"])
    print(f"  custom model {model['modelName']}, training loss {model.get('trainingMetrics', {}).get('trainingLoss')}")

    print("4. provisioned throughput for the custom model", flush=True)
    pt_arn = bedrock.create_provisioned_model_throughput(
        provisionedModelName=f"summarizer-{run}", modelId=model["modelArn"], modelUnits=1)["provisionedModelArn"]
    try:
        pt = wait(lambda: bedrock.get_provisioned_model_throughput(provisionedModelId=pt_arn), {"InService", "Failed"}, "provisioned model", 600)
        if pt["status"] != "InService":
            sys.exit(f"the provisioned model failed: {pt.get('failureMessage')}")
        print("5. the custom model, asked the same", flush=True)
        custom_answer = ask(runtime, pt_arn, dialogue, args.max_tokens)
        print(f"  {custom_answer}\n")
        print(json.dumps({"base": base_answer, "custom": custom_answer, "job": job_arn, "customModel": model["modelArn"]}, indent=2))
    finally:
        bedrock.delete_provisioned_model_throughput(provisionedModelId=pt_arn)


if __name__ == "__main__":
    main()
