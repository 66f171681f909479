"""Any OpenAI-compatible chat endpoint (vLLM, TGI, llama.cpp, `transformers serve`, hosted APIs).

`generator.py` is the generator (one event loop per generator, bounded concurrency, answers in order);
`router.py` picks a replica for each request and keeps the pool (cool-down, probation); `retries.py`
says what is retried and how long to wait; `transport.py` says where the API key may go, builds the HTTP
clients and runs the event loop. The imports run one way: generator uses the other three, transport uses
router and retries, and those two use nothing of this package; none imports this file.
"""

from .generator import OpenAIChatGenerator
from .retries import RETRYABLE_4XX, HTTPGenerationError, MalformedAnswer, retryable_status
from .router import Replica
from .transport import ALLOW_INSECURE_HTTP_ENV, REDACTED, InsecureTransportError, api_key_for, may_send_key

__all__ = ["ALLOW_INSECURE_HTTP_ENV", "REDACTED", "RETRYABLE_4XX", "HTTPGenerationError", "InsecureTransportError",
           "MalformedAnswer", "OpenAIChatGenerator", "Replica", "api_key_for", "may_send_key", "retryable_status"]
