#!/usr/bin/env python3
"""A small AWS Lambda Invoke API for tests: runs an ordinary Python Lambda handler
(`lambda_handler(event, context)`) in this process and answers as Lambda does.

  POST /2015-03-31/functions/<name-or-ARN>/invocations   body: the event JSON
  200 + the handler's result as JSON; a handler exception is a *function error*: still HTTP 200,
  with the header X-Amz-Function-Error: Unhandled and {"errorMessage", "errorType"} as the body.
  An unknown function is 404 ResourceNotFoundException (the Invoke call itself failed).

Usage: tools/lambda_invoke_server.py --handler tools/rotation_function.py [--function NAME] [--port 0]
Prints one line, `listening on http://127.0.0.1:PORT`, once it accepts. SigV4 is not checked.
"""

import argparse
import importlib.util
import json
import sys
import threading
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2015-03-31/functions/"
SUFFIX = "/invocations"


class Context:
    """The parts of Lambda's context object a rotation function may read."""

    def __init__(self, name):
        self.function_name = name
        self.aws_request_id = "local"

    def get_remaining_time_in_millis(self):
        return 60_000


def load(path):
    spec = importlib.util.spec_from_file_location("rotation_handler", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handler", required=True, help="a .py file defining lambda_handler(event, context)")
    parser.add_argument("--function", default=None, help="only answer for this function name (default: any)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    handler = load(args.handler)
    lock = threading.Lock()  # one invocation at a time, as one Lambda instance

    class Invoke(BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):
            sys.stderr.write("lambda: " + fmt % a + "\n")

        def answer(self, status, body, headers=()):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self):
            path = urllib.parse.urlparse(self.path).path
            if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
                return self.answer(404, {"Type": "User", "message": "Unknown path"})
            name = urllib.parse.unquote(path[len(PREFIX) : -len(SUFFIX)])
            short = name.rsplit(":", 1)[-1] if name.startswith("arn:") else name
            if args.function and short != args.function:
                return self.answer(
                    404, {"Type": "User", "message": f"Function not found: {name}"},
                    [("X-Amzn-ErrorType", "ResourceNotFoundException")],
                )
            length = int(self.headers.get("Content-Length") or 0)
            try:
                event = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                return self.answer(400, {"Type": "User", "message": "Could not parse request body into json"})
            with lock:
                try:
                    result = handler(event, Context(short))
                except Exception as e:  # a function error: HTTP 200 plus X-Amz-Function-Error
                    traceback.print_exc()
                    body = {"errorMessage": str(e), "errorType": type(e).__name__}
                    return self.answer(200, body, [("X-Amz-Function-Error", "Unhandled")])
            self.answer(200, result)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Invoke)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
