"""Random ranged GETs with boto3 and a thread pool: the reference that
BenchmarkS3RandomRead is compared with in bench/io/run.sh.

Usage: boto3_bench.py BUCKET KEY SIZE BLOCK CONCURRENCY SECONDS
(endpoint and credentials from the AWS_* environment variables).
Prints one JSON line: {"block":..., "mbps":..., "reqs":..., "cpu_us_per_req":...}
(the client's own CPU time per request).
"""

import json
import random
import sys
import threading
import time

import boto3
from botocore.config import Config


def main():
    bucket, key = sys.argv[1], sys.argv[2]
    size, block, concurrency = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    seconds = float(sys.argv[6])
    client = boto3.client(
        "s3",
        config=Config(max_pool_connections=concurrency, retries={"max_attempts": 3, "mode": "standard"}),
    )
    blocks = size // block
    deadline = time.monotonic() + seconds
    counts = [0] * concurrency

    def worker(slot):
        rng = random.Random(slot)
        while time.monotonic() < deadline:
            off = rng.randrange(blocks) * block
            body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={off}-{off + block - 1}")["Body"].read()
            if len(body) != block:
                raise RuntimeError(f"short read: {len(body)} of {block}")
            counts[slot] += 1

    start, cpu0 = time.monotonic(), time.process_time()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed, cpu = time.monotonic() - start, time.process_time() - cpu0
    n = sum(counts)
    print(json.dumps({"block": block, "mbps": n * block / elapsed / 1e6, "reqs": n / elapsed, "cpu_us_per_req": cpu / n * 1e6}))


if __name__ == "__main__":
    main()
