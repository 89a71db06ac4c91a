"""The terminal prompt (`signoff watch`, the terminal demo): the choices it offers are the
ones the request's policy allows, and an approver can answer in the tool's place."""

from __future__ import annotations

import io
from collections.abc import Iterator

from rich.console import Console

from signoff.channels.console import Answer, decide_at_prompt
from signoff.models import ApprovalRequest, Status
from signoff.service import ApprovalService
from tests.conftest import AGENT, PUBLISHER, refund_spec


class Typed:
    """A prompt that answers with the lines given, and keeps what it was asked."""

    def __init__(self, *lines: str) -> None:
        self._lines: Iterator[str] = iter(lines)
        self.asked: list[str] = []

    async def __call__(self, question: str) -> str:
        self.asked.append(question)
        return next(self._lines)


async def _prompted(
    service: ApprovalService, request: ApprovalRequest, prompt: Typed
) -> tuple[ApprovalRequest, str]:
    out = io.StringIO()

    async def carry_out(answer: Answer) -> ApprovalRequest:
        return await service.decide(
            request.id,
            PUBLISHER,
            answer.decision,
            reason=answer.reason,
            modified_args=answer.modified_args,
            response=answer.response,
        )

    await decide_at_prompt(request, Console(file=out, width=120), carry_out, prompt=prompt)
    return await service.get(request.id, PUBLISHER), out.getvalue()


async def test_an_approver_at_the_prompt_answers_in_the_tools_place(
    service: ApprovalService,
) -> None:
    request = (await service.submit(refund_spec(), AGENT)).request
    prompt = Typed("r", '{"refunded": false, "note": "already refunded"}')
    decided, said = await _prompted(service, request, prompt)
    assert "[r]espond" in prompt.asked[0]
    assert decided.status is Status.RESPONDED
    assert decided.response == {"refunded": False, "note": "already refunded"}
    assert "Answered in the tool's place" in said


async def test_the_prompt_offers_only_what_the_policy_allows(service: ApprovalService) -> None:
    policy = {"min_role": "publisher", "timeout_s": 300, "decisions": ["approve", "reject"]}
    request = (await service.submit(refund_spec(policy=policy), AGENT)).request
    prompt = Typed("r", "e", "y")  # respond and edit are not offered: asked again
    decided, said = await _prompted(service, request, prompt)
    assert prompt.asked[0] == "Approve this call? [y]es / [n]o / [s]kip: "
    assert len(prompt.asked) == 3 and said.count("Please answer") == 2
    assert decided.status is Status.APPROVED
