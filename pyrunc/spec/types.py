"""The typed config: config.json as runtime-spec 1.3 defines it, for mypy.

Every object of the spec is a TypedDict here, `total=False` because the spec makes almost every
field optional; the few it requires are `Required`. `pyrunc.spec.load` checks the JSON's shapes
(`spec._SHAPES` and the rules table) and returns it as a `Config`: that cast is the JSON boundary,
and past it mypy checks every field a mechanism reads, by name and by type.

Nothing imports this module at run time: modules name these types behind `if MYPY:` (see
pyrunc._typing), so the hot path pays nothing for them. At run time a `Config` is the dict that
came out of the JSON parser.
"""

from __future__ import annotations

from typing import Literal, Required, TypedDict

# A JSON value whose shape is not fixed by the spec (annotations' values are strings, but hooks'
# state, `unified` and the features document are free-form). `object` makes every reader narrow it.
JSONObject = dict[str, object]


class Root(TypedDict, total=False):
    path: Required[str]
    readonly: bool


class IDMapping(TypedDict):
    containerID: int
    hostID: int
    size: int


class Mount(TypedDict, total=False):
    destination: Required[str]
    source: str
    type: str
    options: list[str]
    uidMappings: list[IDMapping]
    gidMappings: list[IDMapping]


class ConsoleSize(TypedDict):
    height: int
    width: int


class User(TypedDict, total=False):
    uid: int
    gid: int
    umask: int
    additionalGids: list[int]
    username: str


class Capabilities(TypedDict, total=False):
    bounding: list[str]
    effective: list[str]
    inheritable: list[str]
    permitted: list[str]
    ambient: list[str]


class Rlimit(TypedDict):
    type: str
    soft: int
    hard: int


class Scheduler(TypedDict, total=False):
    policy: Required[str]
    nice: int
    priority: int
    flags: list[str]
    runtime: int
    deadline: int
    period: int


# "class" is a keyword, so this one is spelled in the functional form.
IOPriority = TypedDict("IOPriority", {"class": Required[str], "priority": int}, total=False)


class ExecCPUAffinity(TypedDict, total=False):
    initial: str
    final: str


class Process(TypedDict, total=False):
    terminal: bool
    consoleSize: ConsoleSize
    user: User
    args: list[str]
    commandLine: str
    env: list[str]
    cwd: str
    capabilities: Capabilities
    rlimits: list[Rlimit]
    noNewPrivileges: bool
    apparmorProfile: str
    oomScoreAdj: int
    selinuxLabel: str
    scheduler: Scheduler
    ioPriority: IOPriority
    execCPUAffinity: ExecCPUAffinity


class Hook(TypedDict, total=False):
    path: Required[str]
    args: list[str]
    env: list[str]
    timeout: int


class Hooks(TypedDict, total=False):
    prestart: list[Hook]
    createRuntime: list[Hook]
    createContainer: list[Hook]
    startContainer: list[Hook]
    poststart: list[Hook]
    poststop: list[Hook]


HookName = Literal["prestart", "createRuntime", "createContainer", "startContainer",
                   "poststart", "poststop"]


class Namespace(TypedDict, total=False):
    type: Required[str]
    path: str


class TimeOffset(TypedDict, total=False):
    secs: int
    nanosecs: int


class Device(TypedDict, total=False):
    type: Required[str]
    path: Required[str]
    major: int
    minor: int
    fileMode: int
    uid: int
    gid: int


class DeviceRule(TypedDict, total=False):
    allow: Required[bool]
    type: str
    major: int
    minor: int
    access: str


class Memory(TypedDict, total=False):
    limit: int
    reservation: int
    swap: int
    kernel: int
    kernelTCP: int
    swappiness: int
    disableOOMKiller: bool
    useHierarchy: bool
    checkBeforeUpdate: bool


class CPU(TypedDict, total=False):
    shares: int
    quota: int
    burst: int
    period: int
    realtimeRuntime: int
    realtimePeriod: int
    cpus: str
    mems: str
    idle: int


class Pids(TypedDict, total=False):
    limit: int


class WeightDevice(TypedDict, total=False):
    major: Required[int]
    minor: Required[int]
    weight: int
    leafWeight: int


class ThrottleDevice(TypedDict):
    major: int
    minor: int
    rate: int


class BlockIO(TypedDict, total=False):
    weight: int
    leafWeight: int
    weightDevice: list[WeightDevice]
    throttleReadBpsDevice: list[ThrottleDevice]
    throttleWriteBpsDevice: list[ThrottleDevice]
    throttleReadIOPSDevice: list[ThrottleDevice]
    throttleWriteIOPSDevice: list[ThrottleDevice]


class HugepageLimit(TypedDict):
    pageSize: str
    limit: int


class InterfacePriority(TypedDict):
    name: str
    priority: int


class Network(TypedDict, total=False):
    classID: int
    priorities: list[InterfacePriority]


class Rdma(TypedDict, total=False):
    hcaHandles: int
    hcaObjects: int


class Resources(TypedDict, total=False):
    devices: list[DeviceRule]
    memory: Memory
    cpu: CPU
    pids: Pids
    blockIO: BlockIO
    hugepageLimits: list[HugepageLimit]
    network: Network
    rdma: dict[str, Rdma]
    unified: dict[str, str]


class SyscallArg(TypedDict, total=False):
    index: Required[int]
    value: Required[int]
    valueTwo: int
    op: Required[str]


class Syscall(TypedDict, total=False):
    names: Required[list[str]]
    action: Required[str]
    errnoRet: int
    args: list[SyscallArg]


class Seccomp(TypedDict, total=False):
    defaultAction: Required[str]
    defaultErrnoRet: int
    architectures: list[str]
    flags: list[str]
    listenerPath: str
    listenerMetadata: str
    syscalls: list[Syscall]


class IntelRdt(TypedDict, total=False):
    closID: str
    l3CacheSchema: str
    memBwSchema: str
    schemata: list[str]
    enableMonitoring: bool


class Personality(TypedDict, total=False):
    domain: Required[str]
    flags: list[str]


class MemoryPolicy(TypedDict, total=False):
    mode: Required[str]
    nodes: str
    flags: list[str]


class NetDevice(TypedDict, total=False):
    name: str


class Linux(TypedDict, total=False):
    namespaces: list[Namespace]
    uidMappings: list[IDMapping]
    gidMappings: list[IDMapping]
    timeOffsets: dict[str, TimeOffset]
    devices: list[Device]
    netDevices: dict[str, NetDevice]
    cgroupsPath: str
    resources: Resources
    intelRdt: IntelRdt
    sysctl: dict[str, str]
    seccomp: Seccomp
    rootfsPropagation: str
    maskedPaths: list[str]
    readonlyPaths: list[str]
    mountLabel: str
    personality: Personality
    memoryPolicy: MemoryPolicy


class Config(TypedDict, total=False):
    ociVersion: Required[str]
    root: Root
    mounts: list[Mount]
    process: Process
    hostname: str
    domainname: str
    hooks: Hooks
    annotations: dict[str, str]
    linux: Linux


class OCIState(TypedDict, total=False):
    """runtime.md's state: what `state` prints, hooks read on stdin, a seccomp agent receives."""

    ociVersion: Required[str]
    id: Required[str]
    status: Required[str]
    pid: Required[int]
    bundle: Required[str]
    annotations: dict[str, str]
    rootfs: str  # these three: runc adds them to `state`
    created: str
    owner: str
