"""The device allow-list: spec rules, runc's default devices, and how each hierarchy enforces them.

The list is `linux.resources.devices` in order, then runc's default devices (null, zero, full,
random, urandom, tty, ptmx, pts/*, tun, mknod of any device), then the config's `linux.devices`.
Later rules win, as with v1's devices.allow/devices.deny written in order.

- v1: `a` is written to devices.deny (deny everything), then each rule to devices.allow or
  devices.deny.
- v2: a BPF_PROG_TYPE_CGROUP_DEVICE program, generated here as raw instructions, checks the rules
  from the last to the first; the first match decides, and no match means deny.
"""

from __future__ import annotations

from pyrunc._typing import MYPY
from pyrunc.errors import SpecError
from pyrunc.records import dataclass

if MYPY:
    from collections.abc import Mapping

    from pyrunc.spec.types import DeviceRule, Linux

WILDCARD = -1
Insn = tuple[int, int, int, "int | None", int]  # code, dst, src, off (None: to next), imm
RuleRow = tuple[int, str, int, int, str]  # allow, type, major, minor, access: see Rule.row


@dataclass(frozen=True)
class Rule:
    allow: bool
    type: str     # "a", "c" or "b"
    major: int    # WILDCARD = any
    minor: int
    access: str   # subset of "rwm"

    def v1(self) -> tuple[str, str]:
        """(file, line) for cgroup v1."""
        file = "devices.allow" if self.allow else "devices.deny"
        major = "*" if self.major == WILDCARD else str(self.major)
        minor = "*" if self.minor == WILDCARD else str(self.minor)
        return file, f"{self.type} {major}:{minor} {self.access}"

    def row(self) -> RuleRow:
        """The rule as state.json keeps it: [allow, type, major, minor, access]."""
        return (int(self.allow), self.type, self.major, self.minor, self.access)


def _char(major: int, minor: int) -> Rule:
    return Rule(True, "c", major, minor, "rwm")


# runc's specconv.AllowedDevices.
DEFAULT_RULES = (
    Rule(True, "c", WILDCARD, WILDCARD, "m"),
    Rule(True, "b", WILDCARD, WILDCARD, "m"),
    _char(1, 3),            # /dev/null
    _char(1, 8),            # /dev/random
    _char(1, 7),            # /dev/full
    _char(5, 0),            # /dev/tty
    _char(1, 5),            # /dev/zero
    _char(1, 9),            # /dev/urandom
    _char(136, WILDCARD),   # /dev/pts/*
    _char(5, 2),            # /dev/ptmx
    _char(10, 200),         # /dev/net/tun
)


def _num(entry: Mapping[str, object], key: str, where: str) -> int:
    val = entry.get(key)
    if val is None or val == WILDCARD:
        return WILDCARD
    if isinstance(val, bool) or not isinstance(val, int) or val < 0:
        raise SpecError(f"{where}.{key}: expected a non-negative integer, got {val!r}")
    return val


def parse_rule(entry: DeviceRule, where: str) -> Rule:
    if not isinstance(entry, dict) or not isinstance(entry.get("allow"), bool):
        raise SpecError(f"{where}.allow: required boolean is missing")
    dtype = entry.get("type") or "a"
    if dtype not in ("a", "b", "c"):
        raise SpecError(f"{where}.type: expected 'a', 'b' or 'c', got {dtype!r}")
    access = entry.get("access") or "rwm"
    if not isinstance(access, str) or set(access) - set("rwm"):
        raise SpecError(f"{where}.access: expected letters of 'rwm', got {access!r}")
    access = "".join(c for c in "rwm" if c in access)
    return Rule(entry["allow"], dtype, _num(entry, "major", where), _num(entry, "minor", where),
                access)


def rules(linux: Linux) -> list[Rule]:
    """The full ordered rule list for a config's `linux` section."""
    res = linux.get("resources") or {}
    out = [parse_rule(e, f"linux.resources.devices[{i}]")
           for i, e in enumerate(res.get("devices") or [])]
    out.extend(DEFAULT_RULES)
    for i, dev in enumerate(linux.get("devices") or []):
        where = f"linux.devices[{i}]"
        if dev.get("type") in ("c", "b", "u"):
            dtype = "c" if dev["type"] == "u" else dev["type"]
            out.append(Rule(True, dtype, _num(dev, "major", where), _num(dev, "minor", where),
                            "rwm"))
    return out


def render_v1(rule_list: list[Rule]) -> list[tuple[str, str]]:
    """(file, line) pairs: deny everything, then each rule in order (for a new cgroup)."""
    return [("devices.deny", "a"), *(r.v1() for r in rule_list)]


# ---- v1 transitions (a cgroup that already has tasks) -------------------------------------------
#
# Writing the rules in order to a cgroup that processes are already in opens windows: `a` to
# devices.allow (a rule list that starts by allowing everything) lets them open any device until
# the denials that follow are written; `a` to devices.deny takes their allowed devices away for a
# moment. As runc's devices emulator does, compute the state the rules lead to (the kernel's
# behaviour: a default and exact-match exceptions) and write only the difference from the state
# devices.list shows.

Key = tuple[str, int, int]


@dataclass(frozen=True)
class V1State:
    """A v1 devices cgroup: its default, and the exceptions to it (key -> access)."""

    default_allow: bool
    exceptions: dict[Key, str]


def emulate(rule_list: list[Rule]) -> V1State:
    """The state writing `render_v1(rule_list)` leaves (security/device_cgroup.c's rules)."""
    default_allow, exc = False, dict[Key, str]()
    for rule in rule_list:
        if rule.type == "a":  # `a` resets, whatever its numbers and access
            default_allow, exc = rule.allow, {}
            continue
        key = (rule.type, rule.major, rule.minor)
        if rule.allow != default_allow:  # an exception to the default: added, access merged
            exc[key] = _access_union(exc.get(key, ""), rule.access)
        elif key in exc:  # agrees with the default: removes access from that exact exception
            left = "".join(c for c in exc[key] if c not in rule.access)
            if left:
                exc[key] = left
            else:
                del exc[key]
    return V1State(default_allow, exc)


def parse_list(text: str) -> V1State:
    """devices.list: `a *:* rwm` alone when everything is allowed (the kernel does not list the
    denials then), else the allowed exceptions."""
    exc: dict[Key, str] = {}
    for line in text.splitlines():
        dtype, numbers, access = line.split()
        major, minor = (WILDCARD if n == "*" else int(n) for n in numbers.split(":"))
        if dtype == "a":
            return V1State(True, {})
        exc[(dtype, major, minor)] = _access_union(exc.get((dtype, major, minor), ""), access)
    return V1State(False, exc)


def transition(current: V1State, target: V1State) -> tuple[list[tuple[str, str]], bool]:
    """(file, line) writes from `current` to `target`, and whether they pass through allowing
    every device (the caller freezes the cgroup around them then)."""
    if current.default_allow == target.default_allow:
        # Same default: take away the exceptions' access first, then add (no window either
        # way). With everything allowed, the kernel does not list the denials in force: the
        # target's are (re)written, others stay, as with runc.
        remove = [] if current.default_allow else [
            (key, "".join(c for c in access if c not in target.exceptions.get(key, "")))
            for key, access in current.exceptions.items()]
        add = [(key, "".join(c for c in access if c not in current.exceptions.get(key, "")))
               for key, access in target.exceptions.items()]
        undo_file, do_file = (("devices.allow", "devices.deny") if target.default_allow
                              else ("devices.deny", "devices.allow"))
        return ([(undo_file, _line(k, a)) for k, a in remove if a]
                + [(do_file, _line(k, a)) for k, a in add if a]), False
    reset = ("devices.allow" if target.default_allow else "devices.deny", "a")
    file = "devices.deny" if target.default_allow else "devices.allow"
    writes = [reset, *((file, _line(k, a)) for k, a in target.exceptions.items())]
    return writes, target.default_allow


def _line(key: Key, access: str) -> str:
    dtype, major, minor = key
    return Rule(True, dtype, major, minor, access).v1()[1]


def _access_union(a: str, b: str) -> str:
    return "".join(c for c in "rwm" if c in a or c in b)


# ---- eBPF (cgroup v2) ---------------------------------------------------------------------------

# struct bpf_cgroup_dev_ctx { u32 access_type /* (access << 16) | type */; u32 major; u32 minor; }
_DEV_TYPE = {"b": 1, "c": 2}                  # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
_ACCESS = {"m": 1, "r": 2, "w": 4}            # BPF_DEVCG_ACC_MKNOD, _READ, _WRITE

# opcodes (linux/bpf_common.h, linux/bpf.h)
_LDX_W = 0x61      # BPF_LDX | BPF_MEM | BPF_W
_AND32_K = 0x54    # BPF_ALU | BPF_AND | BPF_K
_RSH32_K = 0x74    # BPF_ALU | BPF_RSH | BPF_K
_MOV32_X = 0xBC    # BPF_ALU | BPF_MOV | BPF_X
_MOV64_K = 0xB7    # BPF_ALU64 | BPF_MOV | BPF_K
_JNE_K = 0x55      # BPF_JMP | BPF_JNE | BPF_K
_JEQ_K = 0x15      # BPF_JMP | BPF_JEQ | BPF_K
_EXIT = 0x95       # BPF_JMP | BPF_EXIT
_NEXT = None       # placeholder offset: jump to the next rule's block


def _insn(code: int, dst: int = 0, src: int = 0, off: int | None = 0, imm: int = 0) -> Insn:
    return (code, dst, src, off, imm)


# r2 = device type, r3 = requested access, r4 = major, r5 = minor (r1 is the context).
_PROLOGUE = [
    _insn(_LDX_W, 2, 1, 0), _insn(_AND32_K, 2, imm=0xFFFF),
    _insn(_LDX_W, 3, 1, 0), _insn(_RSH32_K, 3, imm=16),
    _insn(_LDX_W, 4, 1, 4),
    _insn(_LDX_W, 5, 1, 8),
]


def _access_bits(access: str) -> int:
    return sum(_ACCESS[c] for c in access)


def _block(rule: Rule) -> list[Insn]:
    """Instructions that return the rule's verdict when it matches, else fall to the next block."""
    code: list[Insn] = []
    if rule.type != "a":
        code.append(_insn(_JNE_K, 2, off=_NEXT, imm=_DEV_TYPE[rule.type]))
    if rule.major != WILDCARD:
        code.append(_insn(_JNE_K, 4, off=_NEXT, imm=rule.major))
    if rule.minor != WILDCARD:
        code.append(_insn(_JNE_K, 5, off=_NEXT, imm=rule.minor))
    bits = _access_bits(rule.access)
    if bits != 7:
        code.append(_insn(_MOV32_X, 1, 3))
        if rule.allow:  # allowed only if every requested access is in the rule
            code += [_insn(_AND32_K, 1, imm=~bits & 0x7), _insn(_JNE_K, 1, off=_NEXT, imm=0)]
        else:           # denied if any requested access is in the rule
            code += [_insn(_AND32_K, 1, imm=bits), _insn(_JEQ_K, 1, off=_NEXT, imm=0)]
    code += [_insn(_MOV64_K, 0, imm=1 if rule.allow else 0), _insn(_EXIT)]
    return [(c, d, s, len(code) - i - 1 if off is _NEXT else off, imm)
            for i, (c, d, s, off, imm) in enumerate(code)]


def program(rule_list: list[Rule]) -> list[Insn]:
    """The device filter as (code, dst, src, off, imm) instructions."""
    code = list(_PROLOGUE)
    for rule in reversed(rule_list):
        code.extend(_block(rule))
        if rule.type == "a" and rule.major == rule.minor == WILDCARD and rule.access == "rwm":
            return code  # matches everything: the earlier rules can never be reached
    return [*code, _insn(_MOV64_K, 0, imm=0), _insn(_EXIT)]


def encode(insns: list[Insn]) -> bytes:
    """struct bpf_insn { u8 code; u8 dst:4, src:4; s16 off; s32 imm; } in host (x86) order."""
    import struct  # only when a v2 filter is loaded

    return b"".join(struct.pack("<BBhi", c, (s << 4) | d, off, _s32(imm))
                    for c, d, s, off, imm in insns)


def _s32(imm: int) -> int:
    imm &= 0xFFFFFFFF
    return imm - (1 << 32) if imm & 0x80000000 else imm


def evaluate(insns: list[Insn], dtype: str, major: int, minor: int,
             access: str) -> bool:
    """Run the program in Python (the subset of eBPF it uses): a check for unit tests."""
    regs = [0] * 11
    ctx = [(_access_bits(access) << 16) | _DEV_TYPE[dtype], major, minor]
    pc = 0
    while True:
        code, dst, src, maybe_off, imm = insns[pc]
        off = maybe_off or 0
        pc += 1
        if code == _LDX_W:
            regs[dst] = ctx[off // 4]
        elif code == _AND32_K:
            regs[dst] &= imm & 0xFFFFFFFF
        elif code == _RSH32_K:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code in (_MOV32_X, _MOV64_K):
            regs[dst] = regs[src] if code == _MOV32_X else imm
        elif code in (_JNE_K, _JEQ_K):
            if (regs[dst] != imm) == (code == _JNE_K):
                pc += off
        elif code == _EXIT:
            return regs[0] == 1
        else:
            raise ValueError(f"unknown opcode {code:#x}")
