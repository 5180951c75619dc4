"""The messages of containerd's shim v2 task API, ttrpc and the events it publishes, as wire tables.

Transcribed from the .proto files of containerd 1.6 (Debian's golang-github-containerd-containerd-dev:
runtime/v2/task/shim.proto, api/events/task.proto, api/types/mount.proto, api/types/task/task.proto,
api/services/ttrpc/events/v1/events.proto), ttrpc's request.proto, google/rpc/status.proto,
google/protobuf/{any,timestamp}.proto and the cgroup v1 and v2 metrics of containerd/cgroups
(golang-github-containerd-cgroups-dev: stats/v1/metrics.proto, v2/stats/metrics.proto). Field numbers and kinds are checked against protoc's output in
tests/unit/shim/test_wire.py. See pyrunc.shim.wire for the table format.
"""

from __future__ import annotations

from pyrunc._typing import MYPY

if MYPY:
    from pyrunc.shim.wire import Field, Table

# --- google.protobuf, google.rpc, ttrpc -----------------------------------------------------------
ANY: Table = ((1, "type_url", "s", None), (2, "value", "b", None))
TIMESTAMP: Table = ((1, "seconds", "i", None), (2, "nanos", "i", None))
EMPTY: Table = ()
STATUS: Table = ((1, "code", "i", None), (2, "message", "s", None), (3, "details", "*m", ANY))
KEY_VALUE: Table = ((1, "key", "s", None), (2, "value", "s", None))
REQUEST: Table = ((1, "service", "s", None), (2, "method", "s", None), (3, "payload", "b", None),
                  (4, "timeout_nano", "i", None), (5, "metadata", "*m", KEY_VALUE))
RESPONSE: Table = ((1, "status", "m", STATUS), (2, "payload", "b", None))

# --- containerd.types, containerd.v1.types --------------------------------------------------------
MOUNT: Table = ((1, "type", "s", None), (2, "source", "s", None), (3, "target", "s", None),
                (4, "options", "*s", None))
PROCESS_INFO: Table = ((1, "pid", "u", None), (2, "info", "m", ANY))
# containerd.v1.types.Status
UNKNOWN, CREATED, RUNNING, STOPPED, PAUSED, PAUSING = range(6)

# --- containerd.task.v2 ---------------------------------------------------------------------------
_ID: Field = (1, "id", "s", None)
_EXEC_ID: Field = (2, "exec_id", "s", None)
CREATE_TASK_REQUEST: Table = (
    _ID, (2, "bundle", "s", None), (3, "rootfs", "*m", MOUNT), (4, "terminal", "?", None),
    (5, "stdin", "s", None), (6, "stdout", "s", None), (7, "stderr", "s", None),
    (8, "checkpoint", "s", None), (9, "parent_checkpoint", "s", None), (10, "options", "m", ANY))
CREATE_TASK_RESPONSE: Table = ((1, "pid", "u", None),)
DELETE_REQUEST: Table = (_ID, _EXEC_ID)
DELETE_RESPONSE: Table = ((1, "pid", "u", None), (2, "exit_status", "u", None),
                          (3, "exited_at", "m", TIMESTAMP))
EXEC_PROCESS_REQUEST: Table = (
    _ID, _EXEC_ID, (3, "terminal", "?", None), (4, "stdin", "s", None), (5, "stdout", "s", None),
    (6, "stderr", "s", None), (7, "spec", "m", ANY))
RESIZE_PTY_REQUEST: Table = (_ID, _EXEC_ID, (3, "width", "u", None), (4, "height", "u", None))
STATE_REQUEST: Table = (_ID, _EXEC_ID)
STATE_RESPONSE: Table = (
    _ID, (2, "bundle", "s", None), (3, "pid", "u", None), (4, "status", "u", None),
    (5, "stdin", "s", None), (6, "stdout", "s", None), (7, "stderr", "s", None),
    (8, "terminal", "?", None), (9, "exit_status", "u", None), (10, "exited_at", "m", TIMESTAMP),
    (11, "exec_id", "s", None))
KILL_REQUEST: Table = (_ID, _EXEC_ID, (3, "signal", "u", None), (4, "all", "?", None))
CLOSE_IO_REQUEST: Table = (_ID, _EXEC_ID, (3, "stdin", "?", None))
PIDS_REQUEST: Table = (_ID,)
PIDS_RESPONSE: Table = ((1, "processes", "*m", PROCESS_INFO),)
CHECKPOINT_TASK_REQUEST: Table = (_ID, (2, "path", "s", None), (3, "options", "m", ANY))
UPDATE_TASK_REQUEST: Table = (_ID, (2, "resources", "m", ANY), (3, "annotations", "M", None))
START_REQUEST: Table = (_ID, _EXEC_ID)
START_RESPONSE: Table = ((1, "pid", "u", None),)
WAIT_REQUEST: Table = (_ID, _EXEC_ID)
WAIT_RESPONSE: Table = ((1, "exit_status", "u", None), (2, "exited_at", "m", TIMESTAMP))
STATS_REQUEST: Table = (_ID,)
STATS_RESPONSE: Table = ((1, "stats", "m", ANY),)
CONNECT_REQUEST: Table = (_ID,)
CONNECT_RESPONSE: Table = ((1, "shim_pid", "u", None), (2, "task_pid", "u", None),
                           (3, "version", "s", None))
SHUTDOWN_REQUEST: Table = (_ID, (2, "now", "?", None))
PAUSE_REQUEST: Table = (_ID,)
RESUME_REQUEST: Table = (_ID,)

# --- containerd.events (api/events/task.proto) and the events service ------------------------------
_CID: Field = (1, "container_id", "s", None)
TASK_IO: Table = ((1, "stdin", "s", None), (2, "stdout", "s", None), (3, "stderr", "s", None),
                  (4, "terminal", "?", None))
TASK_CREATE: Table = (_CID, (2, "bundle", "s", None), (3, "rootfs", "*m", MOUNT),
                      (4, "io", "m", TASK_IO), (5, "checkpoint", "s", None), (6, "pid", "u", None))
TASK_START: Table = (_CID, (2, "pid", "u", None))
TASK_DELETE: Table = (_CID, (2, "pid", "u", None), (3, "exit_status", "u", None),
                      (4, "exited_at", "m", TIMESTAMP), (5, "id", "s", None))
TASK_EXIT: Table = (_CID, (2, "id", "s", None), (3, "pid", "u", None),
                    (4, "exit_status", "u", None), (5, "exited_at", "m", TIMESTAMP))
TASK_OOM: Table = (_CID,)
TASK_EXEC_ADDED: Table = (_CID, (2, "exec_id", "s", None))
TASK_EXEC_STARTED: Table = (_CID, (2, "exec_id", "s", None), (3, "pid", "u", None))
TASK_PAUSED: Table = (_CID,)
TASK_RESUMED: Table = (_CID,)
ENVELOPE: Table = ((1, "timestamp", "m", TIMESTAMP), (2, "namespace", "s", None),
                   (3, "topic", "s", None), (4, "event", "m", ANY))
FORWARD_REQUEST: Table = ((1, "envelope", "m", ENVELOPE),)

# The topic and type URL of each event, as containerd's runtime and typeurl name them.
EVENTS: dict[str, tuple[str, Table]] = {
    "TaskCreate": ("/tasks/create", TASK_CREATE),
    "TaskStart": ("/tasks/start", TASK_START),
    "TaskDelete": ("/tasks/delete", TASK_DELETE),
    "TaskExit": ("/tasks/exit", TASK_EXIT),
    "TaskOOM": ("/tasks/oom", TASK_OOM),
    "TaskExecAdded": ("/tasks/exec-added", TASK_EXEC_ADDED),
    "TaskExecStarted": ("/tasks/exec-started", TASK_EXEC_STARTED),
    "TaskPaused": ("/tasks/paused", TASK_PAUSED),
    "TaskResumed": ("/tasks/resumed", TASK_RESUMED),
}
EVENT_TYPE_PREFIX = "containerd.events."

# --- io.containerd.cgroups.v1 (containerd/cgroups stats/v1/metrics.proto) -------------------------
METRICS_TYPE_URL = "io.containerd.cgroups.v1.Metrics"
HUGETLB_STAT: Table = ((1, "usage", "u", None), (2, "max", "u", None), (3, "failcnt", "u", None),
                       (4, "pagesize", "s", None))
PIDS_STAT: Table = ((1, "current", "u", None), (2, "limit", "u", None))
CPU_USAGE: Table = ((1, "total", "u", None), (2, "kernel", "u", None), (3, "user", "u", None),
                    (4, "per_cpu", "*u", None))
THROTTLE: Table = ((1, "periods", "u", None), (2, "throttled_periods", "u", None),
                   (3, "throttled_time", "u", None))
CPU_STAT: Table = ((1, "usage", "m", CPU_USAGE), (2, "throttling", "m", THROTTLE))
MEMORY_ENTRY: Table = ((1, "limit", "u", None), (2, "usage", "u", None), (3, "max", "u", None),
                       (4, "failcnt", "u", None))
# memory.stat's keys in field order (1-32), then the four entries
MEMORY_STAT_KEYS = (
    "cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pgpgin", "pgpgout",
    "pgfault", "pgmajfault", "inactive_anon", "active_anon", "inactive_file", "active_file",
    "unevictable", "hierarchical_memory_limit", "hierarchical_memsw_limit")
_MEM_FIELDS = ("cache", "rss", "rss_huge", "mapped_file", "dirty", "writeback", "pg_pg_in",
               "pg_pg_out", "pg_fault", "pg_maj_fault", "inactive_anon", "active_anon",
               "inactive_file", "active_file", "unevictable", "hierarchical_memory_limit",
               "hierarchical_swap_limit")
MEMORY_STAT: Table = (
    *((i + 1, name, "u", None) for i, name in enumerate(_MEM_FIELDS)),
    *((i + 18, "total_" + name, "u", None) for i, name in enumerate(_MEM_FIELDS[:15])),
    (33, "usage", "m", MEMORY_ENTRY), (34, "swap", "m", MEMORY_ENTRY),
    (35, "kernel", "m", MEMORY_ENTRY), (36, "kernel_tcp", "m", MEMORY_ENTRY))
BLKIO_ENTRY: Table = ((1, "op", "s", None), (2, "device", "s", None), (3, "major", "u", None),
                      (4, "minor", "u", None), (5, "value", "u", None))
BLKIO_STAT: Table = tuple((i + 1, name, "*m", BLKIO_ENTRY) for i, name in enumerate((
    "io_service_bytes_recursive", "io_serviced_recursive", "io_queued_recursive",
    "io_service_time_recursive", "io_wait_time_recursive", "io_merged_recursive",
    "io_time_recursive", "sectors_recursive")))
MEMORY_OOM_CONTROL: Table = ((1, "oom_kill_disable", "u", None), (2, "under_oom", "u", None),
                             (3, "oom_kill", "u", None))
METRICS: Table = ((1, "hugetlb", "*m", HUGETLB_STAT), (2, "pids", "m", PIDS_STAT),
                  (3, "cpu", "m", CPU_STAT), (4, "memory", "m", MEMORY_STAT),
                  (5, "blkio", "m", BLKIO_STAT), (9, "memory_oom_control", "m", MEMORY_OOM_CONTROL))

# --- io.containerd.cgroups.v2 (containerd/cgroups v2/stats/metrics.proto) -------------------------
# Field names are the keys of the cgroup2 files they come from (cpu.stat, memory.stat,
# memory.events, io.stat), which pyrunc.shim.metrics relies on.
METRICS_V2_TYPE_URL = "io.containerd.cgroups.v2.Metrics"
PIDS_STAT_V2: Table = PIDS_STAT
CPU_STAT_V2: Table = tuple((i + 1, name, "u", None) for i, name in enumerate((
    "usage_usec", "user_usec", "system_usec", "nr_periods", "nr_throttled", "throttled_usec")))
# fields 1-31 are memory.stat's keys; 32-35 come from memory.current, .max, .swap.current, .swap.max
MEMORY_STAT_V2_KEYS = (
    "anon", "file", "kernel_stack", "slab", "sock", "shmem", "file_mapped", "file_dirty",
    "file_writeback", "anon_thp", "inactive_anon", "active_anon", "inactive_file", "active_file",
    "unevictable", "slab_reclaimable", "slab_unreclaimable", "pgfault", "pgmajfault",
    "workingset_refault", "workingset_activate", "workingset_nodereclaim", "pgrefill", "pgscan",
    "pgsteal", "pgactivate", "pgdeactivate", "pglazyfree", "pglazyfreed", "thp_fault_alloc",
    "thp_collapse_alloc")
MEMORY_STAT_V2: Table = tuple((i + 1, name, "u", None) for i, name in enumerate((
    *MEMORY_STAT_V2_KEYS, "usage", "usage_limit", "swap_usage", "swap_limit")))
MEMORY_EVENTS_V2: Table = tuple((i + 1, name, "u", None)
                                for i, name in enumerate(("low", "high", "max", "oom", "oom_kill")))
RDMA_ENTRY_V2: Table = ((1, "device", "s", None), (2, "hca_handles", "u", None),
                        (3, "hca_objects", "u", None))
RDMA_STAT_V2: Table = ((1, "current", "*m", RDMA_ENTRY_V2), (2, "limit", "*m", RDMA_ENTRY_V2))
IO_ENTRY_V2: Table = ((1, "major", "u", None), (2, "minor", "u", None), (3, "rbytes", "u", None),
                      (4, "wbytes", "u", None), (5, "rios", "u", None), (6, "wios", "u", None))
IO_STAT_V2: Table = ((1, "usage", "*m", IO_ENTRY_V2),)
HUGETLB_STAT_V2: Table = ((1, "current", "u", None), (2, "max", "u", None),
                          (3, "pagesize", "s", None))
METRICS_V2: Table = ((1, "pids", "m", PIDS_STAT_V2), (2, "cpu", "m", CPU_STAT_V2),
                     (4, "memory", "m", MEMORY_STAT_V2), (5, "rdma", "m", RDMA_STAT_V2),
                     (6, "io", "m", IO_STAT_V2), (7, "hugetlb", "*m", HUGETLB_STAT_V2),
                     (8, "memory_events", "m", MEMORY_EVENTS_V2))

# --- runtime options: the Any of CreateTaskRequest.options and of `start`'s stdin -----------------
# containerd.runc.v1.Options (runtime/v2/runc/options/oci.proto): what the CRI plugin and Go
# clients send to runc's shim; containerd.linux.runc.CreateOptions (runtime/linux/runctypes/
# runc.proto): what ctr's --no-pivot, --uidmap and --gidmap send to a runtime not named
# io.containerd.runc.*, as ours; runtimeoptions.v1.Options (pkg/runtimeoptions/v1/api.proto): what
# the CRI plugin sends to such a runtime when its table has `options`. pyrunc.shim.options reads them.
RUNC_OPTIONS_TYPE = "containerd.runc.v1.Options"
RUNC_OPTIONS: Table = (
    (1, "no_pivot_root", "?", None), (2, "no_new_keyring", "?", None), (3, "shim_cgroup", "s", None),
    (4, "io_uid", "u", None), (5, "io_gid", "u", None), (6, "binary_name", "s", None),
    (7, "root", "s", None), (8, "criu_path", "s", None), (9, "systemd_cgroup", "?", None),
    (10, "criu_image_path", "s", None), (11, "criu_work_path", "s", None))
LINUX_CREATE_OPTIONS_TYPE = "containerd.linux.runc.CreateOptions"
LINUX_CREATE_OPTIONS: Table = (
    (1, "no_pivot_root", "?", None), (2, "open_tcp", "?", None),
    (3, "external_unix_sockets", "?", None), (4, "terminal", "?", None),
    (5, "file_locks", "?", None), (6, "empty_namespaces", "*s", None),
    (7, "cgroups_mode", "s", None), (8, "no_new_keyring", "?", None),
    (9, "shim_cgroup", "s", None), (10, "io_uid", "u", None), (11, "io_gid", "u", None),
    (12, "criu_work_path", "s", None), (13, "criu_image_path", "s", None))
CRI_RUNTIME_OPTIONS_TYPE = "runtimeoptions.v1.Options"
CRI_RUNTIME_OPTIONS: Table = ((1, "type_url", "s", None), (2, "config_path", "s", None))
