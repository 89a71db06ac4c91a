"""An answer about a request just written is the text the store wrote, not a second
serialization, and only ever for that very object: anything else is serialized afresh."""

from __future__ import annotations

from signoff.models import Status
from signoff.stores.base import Store
from signoff.stores.cache import ParsedRequests
from tests.stores.test_contract import approved, create, make_request


async def test_the_text_is_the_requests_own_serialization(store: Store) -> None:
    written = await create(store, make_request(1))
    assert store.request_json(written) == written.model_dump_json()
    moved = (await store.transition(written.id, approved)).request
    assert moved.status is Status.APPROVED
    assert store.request_json(moved) == moved.model_dump_json()
    # an older object of the same request is never answered with the newer text
    assert store.request_json(written) == written.model_dump_json()


def test_only_the_very_object_written_reuses_the_text() -> None:
    cache = ParsedRequests()
    request = make_request(1)
    cache.remember(request, "the text written for it", 1)
    assert cache.json_of(request) == "the text written for it"
    equal_but_other = request.model_copy()
    assert cache.json_of(equal_but_other) == equal_but_other.model_dump_json()


def test_text_read_from_a_row_is_not_taken_for_the_objects_own() -> None:
    """A row written by another version of signoff may lack fields this one writes."""
    cache = ParsedRequests()
    request = make_request(1)
    old_text = request.model_dump_json().replace(',"response":null', "")
    parsed = cache.parse(old_text, 1, request.id)
    assert cache.json_of(parsed) == parsed.model_dump_json() != old_text
