#!/usr/bin/python3
"""coyote-sim-bitstream: writes what cRcnfg loads, refuses at once what loading would refuse (an unknown model, an
unknown or malformed shell key), naming it, and decodes a file with --check."""
import os
import subprocess
import sys
import tempfile

TOOL = sys.argv[1]


def run(*args):
    p = subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


def expect(cond, what, out=""):
    if not cond:
        print(f"FAIL: {what}\n{out}")
        sys.exit(1)


os.umask(0o022)  # the usual umask: the bitstreams the tool writes must still be the owner's alone
with tempfile.TemporaryDirectory() as d:
    out = os.path.join(d, "b.bin")
    for model in ("vadd", "aes_ecb", "packet_sniffer", "cosine_similarity"):
        rc, text = run("--model", model, "-o", out)
        expect(rc == 0, f"--model {model} is refused", text)
        mode = os.stat(out).st_mode & 0o777
        expect(mode == 0o600, f"the bitstream was written with mode {mode:o}: readable by other users")
        rc, text = run("--check", out)
        expect(rc == 0 and f"model '{model}'" in text, f"--check does not show model {model}", text)

    rc, text = run("--shell", "--model", "vadd", "--shell-config", "n_fpga_reg=2,rdma=0", "-o", out)
    expect(rc == 0, "a shell bitstream with known keys is refused", text)
    rc, text = run("--check", out)
    expect("shell bitstream" in text and "n_fpga_reg=2,rdma=0" in text, "--check of the shell bitstream", text)

    # Refused at once, nothing written, the bad part named.
    for args, named in ((["--model", "no_such_model"], "no_such_model"),
                        (["--shell", "--shell-config", "en_rdma=0"], "en_rdma"),
                        (["--shell", "--shell-config", "n_fpga_reg=lots"], "n_fpga_reg")):
        bad = os.path.join(d, "bad.bin")
        rc, text = run(*args, "-o", bad)
        expect(rc == 2, f"{args} gives exit code {rc}, not 2", text)
        expect(named in text, f"the error for {args} does not name {named}", text)
        expect(not os.path.exists(bad), f"{args} still wrote a file")

    # Contradicting or missing options: exit code 2, the problem named once, nothing written.
    for args, named in ((["--app", "--shell", "--model", "vadd"], "--app and --shell exclude each other"),
                        (["--shell", "--app", "--model", "vadd"], "--shell and --app exclude each other"),
                        (["--app"], "an app bitstream needs --model")):
        bad = os.path.join(d, "bad.bin")
        rc, text = run(*args, "-o", bad)
        expect(rc == 2 and named in text, f"{args} gives exit code {rc}, or does not say '{named}'", text)
        expect(text.count("coyote-sim-bitstream:") == 1, f"{args}: the tool is named more than once", text)
        expect(not os.path.exists(bad), f"{args} still wrote a file")
    rc, text = run("--check", out, "-o", out)
    expect(rc == 2 and "takes no other options" in text, "--check with other options is not refused", text)

    # --unchecked writes it anyway (to test a loader), and --check decodes it.
    rc, text = run("--unchecked", "--shell", "--shell-config", "en_rdma=0", "-o", out)
    expect(rc == 0, "--unchecked still refuses", text)
    rc, text = run("--check", out)
    expect("en_rdma=0" in text, "--check of the unchecked file", text)
    expect(rc == 1 and "would not load" in text and "en_rdma" in text, "--check passes a file that would not load",
           text)
    rc, text = run("--check")
    expect(rc == 2 and "--check needs a FILE" in text, "--check without a file", text)
    with open("/dev/full", "w") as full:
        p = subprocess.run([TOOL, "--help"], stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    expect(p.returncode == 1 and "No space left on device" in p.stderr, "a failed write to stdout", p.stderr)

    # A model .so is loaded where the bitstream is: missing here is only a warning.
    rc, text = run("--model", "/nonexistent/model.so", "-o", out)
    expect(rc == 0 and "warning" in text, "a missing model .so is not a warning", text)

    # A model .so that exists here is stored by its absolute path (written as "./m.so" from its directory).
    open(os.path.join(d, "m.so"), "wb").close()
    p = subprocess.run([TOOL, "--model", "./m.so", "-o", out], capture_output=True, text=True, timeout=60, cwd=d)
    expect(p.returncode == 0, "--model ./m.so is refused", p.stdout + p.stderr)
    rc, text = run("--check", out)
    expect(f"model '{os.path.join(os.path.realpath(d), 'm.so')}'" in text or f"model '{os.path.join(d, 'm.so')}'" in text,
           "a relative model path is not stored absolute", text)

    # A model .so found here that the loader would refuse before dlopen: one every user may write, a FIFO (which
    # blocked the loader for ever). Refused like an unknown model, naming the file.
    ww = os.path.join(d, "ww.so")
    open(ww, "wb").close()
    os.chmod(ww, 0o666)
    fifo = os.path.join(d, "fifo.so")
    os.mkfifo(fifo, 0o600)
    for path, named in ((ww, "is writable by every user"), (fifo, "is not a regular file")):
        rc, text = run("--model", path, "-o", out)
        expect(rc == 2 and path in text and named in text, f"--model {path} is not refused by name", text)
    # A model path longer than the format holds is a usage error, said once.
    rc, text = run("--model", "/" + "a" * 5000 + ".so", "-o", out)
    expect(rc == 2 and "limited to 4096 bytes" in text and text.count("coyote-sim-bitstream:") == 2,
           "a model path over 4096 bytes", text)

    # An output file another user made (as root: given to nobody), or his symbolic link: refused, naming it, and
    # left as it was (what we write would be his to read; the link would choose where it goes).
    if os.geteuid() == 0:
        theirs = os.path.join(d, "theirs.bin")
        with open(theirs, "wb") as f:
            f.write(b"his")
        os.chmod(theirs, 0o666)
        os.chown(theirs, 65534, -1)
        link = os.path.join(d, "link.bin")
        mine = os.path.join(d, "mine.bin")
        with open(mine, "wb") as f:
            f.write(b"mine")
        os.symlink(mine, link)
        os.lchown(link, 65534, -1)
        for path, named, before, target in ((theirs, "is a file of uid 65534", b"his", theirs),
                                            (link, "is a symbolic link of uid 65534", b"mine", mine)):
            rc, text = run("--model", "vadd", "-o", path)
            expect(rc != 0 and path in text and named in text, f"-o {path} is not refused by name", text)
            expect(open(target, "rb").read() == before, f"-o {path} changed {target}")
    rc, text = run("--help")
    expect(rc == 0 and "aes_ecb" in text and "en_rdma" not in text, "--help lists the example models", text)
print("ok")
