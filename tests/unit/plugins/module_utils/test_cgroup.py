# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The container figures read from the host's /proc and /sys/fs/cgroup (fake trees of both cgroup versions)."""
from __future__ import annotations

import pytest

from ansible_collections.sre.incident.plugins.module_utils import _cgroup, _verify

CID = "4a50d5efaa4f36647354d4bf6faf0de159262b2dab32aa3e24e665ca8a54ffdf"
NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
  eth0:  222289    1000    0    0    0     0          0         0   259029     900    0    0    0     0       0          0
"""
PROC_STAT = "cpu  100 0 50 800 10 0 0 0 0 0\ncpu0 50 0 25 400 5 0 0 0 0 0\ncpu1 50 0 25 400 5 0 0 0 0 0\nintr 1\n"


def write(root, rel, text):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def host(tmp_path, cgroup_lines, pid=4242):
    proc = tmp_path / "proc"
    write(proc, "%d/cgroup" % pid, cgroup_lines)
    write(proc, "%d/net/dev" % pid, NET_DEV)
    write(proc, "stat", PROC_STAT)
    write(proc, "meminfo", "MemTotal:       1000 kB\nMemFree: 10 kB\n")
    return str(proc), str(tmp_path / "sys")


def test_cgroup_v1_reads_as_the_engine_reports(tmp_path):
    proc, sys_root = host(tmp_path, "12:pids:/docker/%s\n4:memory:/docker/%s\n3:cpu,cpuacct:/docker/%s\n"
                                    "2:blkio:/docker/%s\n1:name=systemd:/docker/%s\n" % ((CID,) * 5))
    root = tmp_path / "sys"
    write(root, "cpuacct/docker/%s/cpuacct.usage" % CID, "5000000000\n")
    write(root, "memory/docker/%s/memory.usage_in_bytes" % CID, "600000\n")
    write(root, "memory/docker/%s/memory.limit_in_bytes" % CID, "9223372036854771712\n")
    write(root, "memory/docker/%s/memory.stat" % CID, "cache 200000\ntotal_inactive_file 100000\n")
    write(root, "pids/docker/%s/pids.current" % CID, "7\n")
    write(root, "blkio/docker/%s/blkio.throttle.io_service_bytes_recursive" % CID, "8:0 Read 4096\n8:0 Write 8192\nTotal 12288\n")

    got = _cgroup.sample(4242, CID, proc=proc, cgroup_root=sys_root)

    assert got["cpu_stats"] == dict(cpu_usage=dict(total_usage=5000000000), system_cpu_usage=960 * 10 ** 7, online_cpus=2)
    # no limit of its own: the host's memory, as the engine reports it; the page cache is not counted
    assert _verify.memory_usage(got) == dict(used_bytes=500000, limit_bytes=1024000, percent=48.83)
    assert got["pids_stats"] == {"current": 7}
    assert got["networks"] == {"eth0": dict(rx_bytes=222289, tx_bytes=259029)}
    assert got["blkio_stats"]["io_service_bytes_recursive"] == [dict(op="Read", value=4096), dict(op="Write", value=8192)]
    assert _verify.cpu_percent(got) is None, "one reading: no CPU % (as the engine's one-shot)"


def test_cgroup_v2_and_cpu_percent_between_two_readings(tmp_path):
    proc, sys_root = host(tmp_path, "0::/system.slice/docker-%s.scope\n" % CID)
    root = tmp_path / "sys"
    base = "system.slice/docker-%s.scope" % CID
    write(root, base + "/cpu.stat", "usage_usec 2000000\nuser_usec 1500000\n")
    write(root, base + "/memory.current", "500000\n")
    write(root, base + "/memory.max", "800000\n")
    write(root, base + "/memory.stat", "anon 300000\ninactive_file 100000\n")
    write(root, base + "/pids.current", "3\n")
    write(root, base + "/io.stat", "8:0 rbytes=10 wbytes=20 rios=1 wios=2\n")
    first = _cgroup.sample(4242, CID, proc=proc, cgroup_root=sys_root)
    assert _verify.memory_usage(first) == dict(used_bytes=400000, limit_bytes=800000, percent=50.0)
    assert first["blkio_stats"]["io_service_bytes_recursive"] == [dict(op="read", value=10), dict(op="write", value=20)]

    # half a second later on 2 CPUs: 1 s of host CPU time; the container used 0.25 s of it
    write(root, base + "/cpu.stat", "usage_usec 2250000\n")
    write(tmp_path / "proc", "stat", "cpu  150 0 50 850 10 0 0 0 0 0\ncpu0 1\ncpu1 1\n")
    second = _cgroup.sample(4242, CID, proc=proc, cgroup_root=sys_root)
    assert _verify.cpu_percent_between(first["cpu_stats"], second["cpu_stats"]) == 50.0


@pytest.mark.parametrize("lines, pid", [
    ("0::/system.slice/docker-someoneelse.scope\n", 4242),   # the PID is another container's (reused)
    ("0::/user.slice\n", 4242),                               # a process of the host
    (None, 4242),                                             # no such process here (another PID namespace)
    ("0::/system.slice/docker-%s.scope\n" % CID, 0),          # not running
])
def test_no_reading_when_this_host_does_not_show_the_container(tmp_path, lines, pid):
    proc, sys_root = host(tmp_path, lines or "", pid=4242)
    if lines is None:
        (tmp_path / "proc" / "4242" / "cgroup").unlink()
    assert _cgroup.sample(pid, CID, proc=proc, cgroup_root=sys_root) is None


def test_no_reading_when_the_control_files_are_missing(tmp_path):
    proc, sys_root = host(tmp_path, "0::/system.slice/docker-%s.scope\n" % CID)
    assert _cgroup.sample(4242, CID, proc=proc, cgroup_root=sys_root) is None


def test_a_reading_with_cpu_takes_a_second_one_half_a_second_of_host_time_later(tmp_path):
    proc, sys_root = host(tmp_path, "0::/system.slice/docker-%s.scope\n" % CID)
    root = tmp_path / "sys"
    base = "system.slice/docker-%s.scope" % CID
    for name, text in (("cpu.stat", "usage_usec 2000000\n"), ("memory.current", "500000\n"), ("memory.max", "max\n"),
                       ("memory.stat", "inactive_file 0\n")):
        write(root, base + "/" + name, text)
    polls = []

    def poll(check, timeout, interval):
        # each poll: the host's CPU time moves 0.25 s (on 2 CPUs), the container's 0.1 s
        for n in range(1, 10):
            write(tmp_path / "proc", "stat", "cpu  %d 0 50 800 10 0 0 0 0 0\ncpu0 1\ncpu1 1\n" % (100 + 50 * n))
            write(root, base + "/cpu.stat", "usage_usec %d\n" % (2000000 + 100000 * n))
            polls.append(n)
            if check():
                return True, None, 0
        return False, None, timeout

    got = _cgroup.sample_with_cpu(4242, CID, poll=poll, proc=proc, cgroup_root=sys_root)
    assert polls == [1, 2], "two polls make half a second of host time"
    assert _verify.cpu_percent(got) == 40.0  # 0.2 s of CPU over 0.5 s of wall time: 40 % of one core
    assert _cgroup.sample_with_cpu(4242, "other", poll=poll, proc=proc, cgroup_root=sys_root) is None
