# Many copies of the same data, as a Python service holds them: bytes
# objects and lists of them, and bytearrays that are written after merging.
# Prints "built PID", waits for the file argv[1] to exist (the test has
# seen the pages merge meanwhile), then checks everything and prints "ok".
import os
import sys
import time

N = 8000
SIZE = 16384

blobs = [bytes([65 + i % 4]) * SIZE for i in range(N)]
rows = [list(blobs[:50]) for _ in range(200)]
arrays = [bytearray(blobs[i]) for i in range(1000)]
print("built", os.getpid(), flush=True)

deadline = time.monotonic() + 120
while not os.path.exists(sys.argv[1]):
    if time.monotonic() > deadline:
        sys.exit("equal.py: no go file")
    time.sleep(0.05)

for i, b in enumerate(blobs):
    assert b == bytes([65 + i % 4]) * SIZE, i
for row in rows:
    assert row == blobs[:50]
for i, a in enumerate(arrays):  # writes into merged pages: copy on write
    a[100] = i % 256
    a[SIZE - 1] = 7
for i, a in enumerate(arrays):
    assert a[100] == i % 256 and a[101] == 65 + i % 4 and a[SIZE - 1] == 7, i
    assert a[:100] == blobs[i][:100]
print("ok", sum(len(b) for b in blobs), flush=True)
