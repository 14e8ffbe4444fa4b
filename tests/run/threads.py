# Threads that each build and check many equal buffers, and free each
# other's: the pool serves every thread, and a block may be freed by a
# thread other than the one that allocated it.
import threading

results = {}
shared = []
lock = threading.Lock()


def work(t):
    bufs = [bytearray([t]) * 20000 for _ in range(500)]
    for i, b in enumerate(bufs):
        b[i] = 255
    ok = all(b[i] == 255 and b.count(t) == 19999 for i, b in enumerate(bufs))
    with lock:
        shared.append(bufs)  # freed by the main thread below
    results[t] = ok


threads = [threading.Thread(target=work, args=(t,)) for t in range(1, 9)]
for th in threads:
    th.start()
for th in threads:
    th.join()
assert len(results) == 8 and all(results.values()), results
total = sum(len(b) for bufs in shared for b in bufs)
shared.clear()
print("ok", total)
