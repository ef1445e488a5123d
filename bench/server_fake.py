"""The test suite's OpenAI-compatible fake, with a listen backlog fit for 200+ clients.

python bench/server_fake.py --text "..." --chunk 8    # prints the base URL
"""

from __future__ import annotations

import argparse
import sys
from http.server import ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.openai_server import FakeOpenAI, Text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text", default="Hello! " * 40)
    parser.add_argument("--chunk", type=int, default=8)
    args = parser.parse_args()
    ThreadingHTTPServer.request_queue_size = 4096  # socketserver's default is 5
    fake = FakeOpenAI(default=Text(args.text, chunk=args.chunk)).start()
    print(fake.base_url, flush=True)
    fake.thread.join()


if __name__ == "__main__":
    main()
