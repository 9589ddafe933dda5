"""Experiments' outcomes -> one build's probe: every bit classified (classify.py), held
against the register set's specification, with its side effects on other registers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from patchcheck.build.record import BuildRecord
from patchcheck.probe import classify
from patchcheck.probe.classify import Op
from patchcheck.probe.experiment import Outcome
from patchcheck.probe.model import BitResult, BuildProbe, RegisterResult
from patchcheck.qemu.registers import RegisterSet


def _effects(trace: Sequence[Op], register: str) -> dict[str, list[int]]:
    """Other registers whose value differs between the read just before the tested writes
    and the final snapshot: the side effects of writing the tested bit."""
    last_write = max((i for i, op in enumerate(trace) if op.write and op.register == register),
                     default=-1)
    first_write = min((i for i, op in enumerate(trace) if op.write and op.register == register),
                      default=-1)
    if last_write < 0:
        return {}
    before: dict[str, int] = {}
    for op in trace[:first_write]:
        if not op.write:
            before[op.register] = op.value
    after: dict[str, int] = {}
    for op in trace[last_write:]:
        if not op.write:
            after[op.register] = op.value
    return {key: [before[key], after[key]] for key in after
            if key != register and key in before and before[key] != after[key]}


def effects_text(effects: Mapping[str, Sequence[int]], unplugged: Sequence[str]) -> str:
    parts = [f"{k} {v[0]:#06x}->{v[1]:#06x}" for k, v in sorted(effects.items())]
    if unplugged:
        parts.append("unplugged " + ",".join(unplugged))
    return "; ".join(parts)


def assemble(record: BuildRecord, machine: str, globals_: list[str],
             outcomes: Sequence[Outcome], registers: RegisterSet) -> BuildProbe:
    """Outcomes -> classified, judged register tables."""
    probe = BuildProbe(build=record.name, machine=machine, globals=globals_,
                       qemu_version=record.qemu_version, fix=record.fix_state,
                       fix_applied=str(record.fix.get("applied", "")), has_fix=record.has_fix,
                       source=record.source, binary=record.binary)
    offsets = {o.cap_offset for o in outcomes if o.cap_offset is not None}
    if len(offsets) > 1:
        probe.errors.append(f"the capability moved between experiments: {sorted(offsets)}")
    probe.cap_offset = min(offsets) if offsets else None
    port = next((o.address for o in outcomes if o.address is not None), None)
    probe.root_port = [port.bus, port.device, port.function] if port else []
    context: dict[str, int] = {}
    for outcome in outcomes:
        for reg in (*registers.probed, *registers.context):
            value = classify.reset_value(outcome.trace, reg.key)
            if value is not None and reg.key not in context:
                context[reg.key] = value
    probe.reset = dict(context)
    by_register: dict[str, RegisterResult] = {}
    for reg in registers.probed:
        address = None if probe.cap_offset is None else probe.cap_offset + reg.offset
        by_register[reg.key] = RegisterResult(reg.key, reg.title, reg.offset, address, reg.size,
                                              context.get(reg.key), reg.style, [])
    for outcome in outcomes:
        exp = outcome.experiment
        key = exp.register.key
        if outcome.error:
            probe.errors.append(outcome.error)
            behaviour = classify.BitBehaviour(classify.Behaviour.UNTESTED, None)
        else:
            behaviour = classify.classify_bit(outcome.trace, key, exp.bit)
        spec = registers.spec.get((key, exp.bit))
        conformance = classify.check(spec, behaviour, context)
        if outcome.error:
            conformance = classify.Conformance(classify.Status.UNTESTED, outcome.error)
        effects = _effects(outcome.trace, key)
        by_register[key].bits.append(BitResult(
            register=key, bit=exp.bit, name=registers.bit_name(key, exp.bit),
            behaviour=behaviour.kind.value, reset=behaviour.reset, value=behaviour.value,
            label=behaviour.label, spec=spec.text if spec else "",
            status=conformance.status.value, reason=conformance.reason,
            armed=exp.arm.why if exp.arm else "",
            transitions=[[t.before, t.written, t.after] for t in behaviour.transitions],
            effects=effects, unplugged=list(outcome.unplugged),
            effects_text=effects_text(effects, outcome.unplugged),
            trace=[str(op) for op in outcome.trace], seconds=outcome.seconds,
            error=outcome.error))
    for result in by_register.values():
        result.bits.sort(key=lambda b: b.bit)
    probe.registers = list(by_register.values())
    probe.experiments = len(outcomes)
    return probe
