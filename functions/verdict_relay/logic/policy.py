"""The verdict policy applied to every provider's verdict before it is stored: pure and configurable.

* A job that failed, or expired before anyone saw its result, was never moderated: it must not pass silently.
  It gets the unmoderated suggestion (``review`` by default, ``block`` optionally), decided by policy, or the
  provider's own suggestion or its strictest finding's if that is stricter (a failed job may still carry
  results of the parts it finished).
* A job whose individual items failed (an image of a batch) gets at least the unmoderated suggestion.
* A job is at least as strict as its strictest finding: a provider whose job-level suggestion is milder than one
  of its parts' (Alibaba documents the job's as its worst part's, yet its own sample disagrees) is read the
  stricter way. A human reviewer's decision is left as it is.
* Which terminal verdicts are published: ``block`` and ``review`` always, ``pass`` only when configured.
"""

from __future__ import annotations

from dataclasses import dataclass

from verdict_relay.models.verdict import JobStatus, Suggestion, Verdict, VerdictError, worst


@dataclass(frozen=True)
class VerdictPolicy:
    unmoderated: Suggestion = Suggestion.REVIEW
    publish_pass: bool = False

    def finalize(self, verdict: Verdict) -> Verdict:
        """The verdict as it will be stored: unmoderated content raised to the unmoderated suggestion."""
        if verdict.status in (JobStatus.FAILED, JobStatus.EXPIRED):
            error = verdict.error or VerdictError(
                code="job_expired" if verdict.status is JobStatus.EXPIRED else "job_failed",
                message="the provider no longer knows this job"
                if verdict.status is JobStatus.EXPIRED
                else "the provider reported the job as failed",
            )
            given = [verdict.suggestion, *(f.suggestion for f in verdict.findings)]
            strictest = worst([self.unmoderated, *(s for s in given if s is not None)])
            return verdict.model_copy(
                update={"suggestion": strictest, "decided_by": "policy", "error": error}
            )
        if verdict.status is not JobStatus.SUCCEEDED:
            return verdict
        if verdict.item_errors or verdict.suggestion is None:
            current = verdict.suggestion
            if current is None or current.severity < self.unmoderated.severity:
                verdict = verdict.model_copy(update={"suggestion": self.unmoderated, "decided_by": "policy"})
        strictest = worst([f.suggestion for f in verdict.findings if f.suggestion is not None])
        if (
            verdict.decided_by != "reviewer"
            and strictest is not None
            and verdict.suggestion is not None
            and strictest.severity > verdict.suggestion.severity
        ):
            verdict = verdict.model_copy(update={"suggestion": strictest, "decided_by": "policy"})
        return verdict

    def should_publish(self, verdict: Verdict) -> bool:
        if not verdict.is_terminal or verdict.suggestion is None:
            return False
        return verdict.suggestion is not Suggestion.PASS or self.publish_pass
