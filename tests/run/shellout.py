# subprocess and os.system shell-outs: Python starts them with vfork or
# posix_spawn, which share the parent's memory until the exec.
import os
import subprocess

data = [b"x" * 100000 for _ in range(100)]
out = subprocess.run(["sh", "-c", "echo $((6 * 7))"], capture_output=True, check=True)
assert out.stdout == b"42\n", out
assert subprocess.check_output(["/bin/echo", "hello"]) == b"hello\n"
assert os.system("exit 3") >> 8 == 3
p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
got, _ = p.communicate(b"y" * 300000)
assert got == b"y" * 300000 and p.returncode == 0
assert all(d == b"x" * 100000 for d in data)
print("ok")
