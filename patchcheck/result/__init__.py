"""Results: the data a case gives, `Case` and `Side` in, `CaseResult` (its `Observed` outcome)
and `RunResults` (results.json) out; no judgement here (that is `verdict`)."""
