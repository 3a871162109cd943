#!/usr/bin/env python3
"""Writes benchmark seed data: TENANTS x TASKS tasks as CSV for COPY (stdout), with UUIDv7
ids in creation order, and a sample of (tenant, id) pairs for the get-by-id load."""
import os
import random
import sys
import time
import uuid

tenants, per_tenant, pairs_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
start_ms = int(time.time() * 1000) - tenants * per_tenant * 2
out = sys.stdout
pairs = []
n = 0
for t in range(1, tenants + 1):
    tenant = f"org_bench_{t}"
    for i in range(per_tenant):
        n += 1
        ms = start_ms + n * 2
        rand = int.from_bytes(os.urandom(10), "big")
        value = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64 | (0b10 << 62) | (rand & ((1 << 62) - 1))
        task_id = str(uuid.UUID(int=value))
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + "+00"
        out.write(f"{task_id},{tenant},Benchmark task {i} of {tenant},1,user_bench,{stamp},{stamp}\n")
        if random.random() < 0.02:
            pairs.append((t, task_id))
with open(pairs_path, "w") as f:
    for t, task_id in pairs:
        f.write(f"{t} {task_id}\n")
