# fork() under samepage run, before fork support: the child does not have
# the pool's memory and dies of SIGSEGV, having said why; the parent goes
# on unaffected. Prints "ok".
import os
import signal

data = [bytes([i % 3]) * 50000 for i in range(200)]
pid = os.fork()
if pid == 0:
    os._exit(len(data[0]))  # touches the pool: SIGSEGV
_, status = os.waitpid(pid, 0)
assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSEGV, status
assert all(d == bytes([i % 3]) * 50000 for i, d in enumerate(data))
print("ok")
