"""A local OpenAI-compatible endpoint (``POST /v1/chat/completions``) serving one causal LM,
for study C's judge (``studies.teachers.evaluation.judge.serve``): the stand-in of a vLLM
server, so that alpaca-eval's own annotator (``openai_completions`` decoder, the paper's
prompt and ``logprob_parser``) runs unchanged against a local model, with no key and no
network.

What it computes is the model's own: the chat template applied to the messages, greedy
decoding of ``max_tokens`` tokens, and per generated token the log-probabilities of the
``top_logprobs`` most likely tokens (at least ``min_top_logprobs``, like vLLM's
``--max-logprobs``), each named by its decoded text. The model answers under any model name.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ChatModel:
    """One loaded model and tokenizer; ``complete`` is one chat completion (thread-safe)."""

    def __init__(self, location: str, min_top_logprobs: int = 20, trust_remote_code: bool = False,
                 device: str = "cpu"):
        from itlab.models import load_model, load_tokenizer

        self.tokenizer = load_tokenizer(location, trust_remote_code=trust_remote_code)
        self.model = load_model(location, trust_remote_code=trust_remote_code).to(device).eval()
        self.device = device
        self.min_top_logprobs = min_top_logprobs
        self.lock = threading.Lock()

    def _entry(self, token_id: int, logprob: float) -> dict:
        text = self.tokenizer.decode([token_id])
        return {"token": text, "bytes": list(text.encode()), "logprob": logprob}

    def complete(self, request: dict) -> dict:
        import torch

        tok = self.tokenizer
        prompt = tok.apply_chat_template(request["messages"], add_generation_prompt=True, tokenize=False)
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"].to(self.device)
        n_prompt = ids.shape[1]
        want_logprobs = bool(request.get("logprobs"))
        k = max(int(request.get("top_logprobs") or 0), self.min_top_logprobs) if want_logprobs else 0
        content, text_ids = [], []
        with self.lock, torch.no_grad():
            for _ in range(int(request.get("max_tokens") or 16)):
                logits = self.model(input_ids=ids).logits[0, -1].float()
                logp = torch.log_softmax(logits, dim=-1)
                nxt = int(torch.argmax(logp))  # greedy
                if want_logprobs:
                    top = torch.topk(logp, min(k, logp.shape[0]))
                    entry = self._entry(nxt, float(logp[nxt]))
                    entry["top_logprobs"] = [self._entry(int(i), float(v)) for v, i in zip(top.values, top.indices)]
                    content.append(entry)
                text_ids.append(nxt)
                if nxt == tok.eos_token_id:
                    break
                ids = torch.cat([ids, torch.tensor([[nxt]], device=ids.device)], dim=1)
        text = tok.decode(text_ids, skip_special_tokens=True)
        return {"id": f"chatcmpl-local-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()),
                "model": request.get("model", "local"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "logprobs": {"content": content} if want_logprobs else None,
                             "finish_reason": "stop" if text_ids and text_ids[-1] == tok.eos_token_id else "length"}],
                "usage": {"prompt_tokens": n_prompt, "completion_tokens": len(text_ids),
                          "total_tokens": n_prompt + len(text_ids)}}


class _Handler(BaseHTTPRequestHandler):
    chat: ChatModel

    def do_POST(self):  # noqa: N802 - http.server's name
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            return self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            return self._send(200, self.chat.complete(body))
        except Exception as err:  # noqa: BLE001 - returned to the client as an API error
            return self._send(500, {"error": {"message": f"{type(err).__name__}: {err}", "type": "server_error"}})

    def _send(self, status: int, payload: dict):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):  # one line per request in the job's log
        print("judge server:", fmt % args, flush=True)


class ServedModel:
    """Context manager: the model behind ``http://127.0.0.1:<free port>/v1`` (``base_url``)."""

    def __init__(self, location: str, min_top_logprobs: int = 20, trust_remote_code: bool = False,
                 device: str = "cpu"):
        self.chat = ChatModel(location, min_top_logprobs, trust_remote_code, device)

    def __enter__(self):
        handler = type("Handler", (_Handler,), {"chat": self.chat})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
