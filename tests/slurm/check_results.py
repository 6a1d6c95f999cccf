#!/usr/bin/python3
"""slurm/results.py on malformed job folders: every problem is reported with its file and reason, the rest of
the summary is still printed, and nothing ends in a Python traceback; a --csv or --plot file that cannot be
written is an error message and exit code 1.

    check_results.py SLURM_DIR
"""
import importlib.util
import os
import subprocess
import sys
import tempfile

RESULTS = os.path.join(sys.argv[1], "results.py")
failures = 0

GOOD_REPORT = (b'{"context":{"host_name":"h1"},"benchmarks":[{"name":"good_bench/64","run_type":"iteration",'
               b'"real_time":1.5,"time_unit":"us","bytes_per_second":2000000000,"iterations":10}]}')


def make_job(root, name, files):
    """A job folder with a well-formed job.env, status, steps.tsv and bench report, then FILES on top
    (relative path -> bytes)."""
    job = os.path.join(root, name)
    base = {
        "job.env": b"job_id=42\nkind=bench\nnodes=node[1-2]\nranks=2\nlauncher=mpirun\nstart=s\nend=e\n",
        "status": b"ok\n",
        "steps.tsv": b"step\texit_code\tseconds\ngood_step\t0\t3\n",
        "bench/local_bench.node1.json": GOOD_REPORT,
    }
    base.update(files)
    for rel, data in base.items():
        path = os.path.join(job, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return job


def run(job, *extra):
    p = subprocess.run(["/usr/bin/python3", RESULTS, job, *extra], capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def check(what, cond, out=""):
    global failures
    if cond:
        print(f"ok: {what}")
    else:
        failures += 1
        print(f"FAIL: {what}\n{out}\n----")


# name: (files on top of the good folder, the file named in the report, what the report must say,
#        whether the good steps.tsv / job.env / bench report still show)
CASES = {
    "cut_in_utf8": ({"bench/rdma_bench.json": b'{"benchmarks":[{"name":"caf\xc3'},
                    "rdma_bench.json", "can't decode byte 0xc3"),
    "cut_in_json": ({"bench/rdma_bench.json": b'{"benchmarks":[{"name":"x","real_ti'},
                    "rdma_bench.json", "incomplete result"),
    "empty_json": ({"bench/rdma_bench.json": b""}, "rdma_bench.json", "incomplete result"),
    "null_json": ({"bench/rdma_bench.json": b"null"}, "rdma_bench.json", "top level is null"),
    "array_json": ({"bench/rdma_bench.json": b"[]"}, "rdma_bench.json", "top level is an array"),
    "benchmarks_not_array": ({"bench/rdma_bench.json": b'{"benchmarks":{"a":1}}'},
                             "rdma_bench.json", '"benchmarks" is an object'),
    "entry_not_object": ({"bench/rdma_bench.json": b'{"benchmarks":[1]}'},
                         "rdma_bench.json", "benchmarks[0] is 1, not an object"),
    "context_not_object": ({"bench/rdma_bench.json": b'{"context":[1],"benchmarks":[{"name":"ctx","real_time":2}]}'},
                           None, "ctx"),
    "string_real_time": ({"bench/rdma_bench.json": b'{"benchmarks":[{"name":"s","real_time":"12","time_unit":"ns"}]}'},
                         "rdma_bench.json", 'real_time is "12", not a number'),
    "string_rate": ({"bench/rdma_bench.json": b'{"benchmarks":[{"name":"s","real_time":1,"bytes_per_second":"9"}]}'},
                    "rdma_bench.json", 'bytes_per_second is "9", not a number'),
    "name_not_string": ({"bench/rdma_bench.json": b'{"benchmarks":[{"name":[1,2],"real_time":1}]}'}, None, "[1, 2]"),
    "lone_surrogate_name": ({"bench/rdma_bench.json": b'{"benchmarks":[{"name":"\\ud800","real_time":1}]}'},
                            None, "\\ud800"),
    "deeply_nested": ({"bench/rdma_bench.json": b"[" * 200000}, "rdma_bench.json", "nested too deeply"),
    "short_steps_row": ({"steps.tsv": b"step\texit_code\tseconds\ngood_step\t0\t3\nshort_step\t1\n"},
                        "steps.tsv", "line 3 has 2 field(s), expected 3"),
    "long_steps_row": ({"steps.tsv": b"step\texit_code\tseconds\ngood_step\t0\t3\nx\t0\t1\tmore\n"},
                       "steps.tsv", "line 3 has 4 field(s), expected 3"),
    "steps_not_utf8": ({"steps.tsv": b"step\texit_code\tseconds\ngood_step\t0\t3\n\xff_step\t0\t1\n"},
                       "steps.tsv", "not UTF-8"),
    "env_not_utf8": ({"job.env": b"job_id=42\nkind=bench\nCOYOTE_PROGRAM_ARGS=\xff\xfe\nranks=2\n"},
                     "job.env", "not UTF-8"),
    "status_not_utf8": ({"status": b"failed: \xe9\n"}, "status", "not UTF-8"),
}

with tempfile.TemporaryDirectory() as root:
    for name, (files, named, says) in CASES.items():
        job = make_job(root, name, files)
        rc, out, err = run(job)
        text = out + err
        check(f"{name}: exit code 0, no traceback", rc == 0 and "Traceback" not in text, text)
        if named is not None:
            check(f"{name}: the report names {named} and says '{says}'",
                  any(named in line and says in line for line in out.splitlines()), text)
        else:
            check(f"{name}: the report shows '{says}'", says in out, text)
        check(f"{name}: the job facts, the status and the other results are still shown",
              "job 42 (bench)" in out and "status: " in out and "good_bench/64" in out and "2.00 GB/s" in out,
              text)
        if "steps.tsv" not in files:
            check(f"{name}: the steps are still shown", "good_step" in out, text)

    # An output file that cannot be written: an error naming it, exit code 1, the summary printed before.
    job = make_job(root, "unwritable", {})
    outputs = ("--csv", "--plot")
    if importlib.util.find_spec("matplotlib") is None:  # without it --plot only says so
        print("note: python3-matplotlib not installed, --plot not checked")
        outputs = ("--csv",)
    targets = [(opt, os.path.join(root, "no_such_dir", "x" + ext), "into a missing directory")
               for opt, ext in (("--csv", ".csv"), ("--plot", ".png")) if opt in outputs]
    if "--plot" in outputs:
        targets.append(("--plot", os.path.join(root, "x.nosuchformat"), "in a format matplotlib lacks"))
    for opt, target, how in targets:
        rc, out, err = run(job, opt, target)
        check(f"{opt} {how}: exit code 1, an error naming the file, no traceback",
              rc == 1 and target in err and "Traceback" not in out + err, out + err)
        check(f"{opt} {how}: the summary is still printed", "good_bench/64" in out, out + err)
    csv_path = os.path.join(root, "ok.csv")
    rc, out, err = run(job, "--csv", csv_path)
    check("--csv into a writable place writes the rows", rc == 0 and os.path.isfile(csv_path)
          and "good_bench/64" in open(csv_path, encoding="utf-8").read(), out + err)
    # Owner-only whatever the caller's umask: the summary names hosts and jobs.
    private_csv = os.path.join(root, "private.csv")
    old_umask = os.umask(0)
    try:
        rc, out, err = run(job, "--csv", private_csv)
    finally:
        os.umask(old_umask)
    mode = os.stat(private_csv).st_mode & 0o777 if os.path.isfile(private_csv) else None
    check(f"--csv under umask 000 is owner-only (mode {oct(mode) if mode is not None else None})",
          rc == 0 and mode == 0o600, out + err)

print(f"{failures} failure(s)")
sys.exit(1 if failures else 0)
