"""The uploader: pending outbox events to ``POST /v1/events``, oldest first, in batches.

Each event is settled by the server's answer for it: accepted or duplicate means sent,
rejected means dead-lettered with the reason; whatever has no answer stays pending and is
sent again (the server deduplicates by id), so every event arrives exactly once.
"""

from __future__ import annotations

import logging

from appliance.outbox import mark_dead, mark_sent, note_attempt, pending_batch
from appliance.reactor import Timer
from sync.backoff import Backoff
from sync.client import BodyTooLarge, ServerUnreachable, TokenUnavailable
from sync.contact import SyncPart

log = logging.getLogger("antrean.sync")

BATCH_SIZE = 100


class Uploader(SyncPart):
    """The outbox side of one sync service; ``timer`` is when the next round may start."""

    def __init__(self, *parts, backoff: Backoff, **kw):
        super().__init__(*parts, **kw)
        self.backoff = backoff
        self.timer = Timer(0.0, None, 0.0)

    def upload_round(self, max_batches: int | None = None) -> tuple[str, float | None]:
        """Send pending events oldest first; returns (outcome, retry_after) where outcome is
        done (nothing pending), more (stopped at max_batches), retry, unauthorized or
        misrouted (the endpoint is not there: 404/405/410/413; nothing dead-lettered)."""
        batches = 0
        while True:
            self.keep_alive()
            batch = pending_batch(self.store, BATCH_SIZE)
            if not batch:
                self.backoff.succeeded()
                return "done", None
            if max_batches is not None and batches >= max_batches:
                return "more", None
            batches += 1
            ids = [e.id for e in batch]
            note_attempt(self.store, ids)
            try:
                ans = self.client.post_events([e.body for e in batch])
            except TokenUnavailable as e:
                self.contact.unauthorized(str(e))
                return "unauthorized", None
            except (ServerUnreachable, BodyTooLarge) as e:
                self.contact.unreachable(str(e))
                return "retry", None
            if ans.status == 401:
                self.contact.unauthorized()
                return "unauthorized", None
            if ans.status == 200:
                left = self._apply_results(ids, ans)
                if left is not None:
                    self.contact.unreachable(left)
                    return "retry", None
                continue
            if ans.wrong_endpoint:
                self.contact.misrouted("POST events", ans.status, "every event stays pending (none "
                                "is dead-lettered) and is sent once that is fixed")
                return "misrouted", None
            if ans.retryable or not 400 <= ans.status < 500:
                self.contact.unreachable(f"POST events answered HTTP {ans.status}")
                return "retry", ans.retry_after()
            self.contact.ok()
            doc = ans.json()
            text = doc.get("error") if isinstance(doc, dict) else None
            reason = f"HTTP {ans.status}: {text or 'the server refused the whole batch'}"
            mark_dead(self.store, dict.fromkeys(ids, reason[:500]))
            log.warning("%d events dead-lettered: %s", len(ids), reason)

    def _apply_results(self, ids: list[str], ans) -> str | None:
        """Mark what the server settled; returns why the rest must be retried, or None."""
        doc = ans.json()
        results = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(results, list):
            return "POST events answered 200 without a readable result list"
        self.contact.ok()
        self.server_clock.note_date(ans)
        self.faults.clear("endpoint POST events", "the events endpoint answers again")
        wanted = set(ids)
        sent, dead = [], {}
        for r in results:
            if not isinstance(r, dict) or r.get("id") not in wanted:
                continue
            if r.get("status") in ("accepted", "duplicate"):
                sent.append(r["id"])
            elif r.get("status") == "rejected":
                dead[r["id"]] = str(r.get("reason") or "rejected by the server")[:500]
        dead = {k: v for k, v in dead.items() if k not in sent}
        if sent:
            mark_sent(self.store, sent)
        if dead:
            mark_dead(self.store, dead)
            first = next(iter(dead.items()))
            log.warning("%d events rejected by the server and dead-lettered (e.g. %s: %s)",
                        len(dead), *first)
        missing = wanted - set(sent) - set(dead)
        if missing:
            return f"POST events answered without a result for {len(missing)} events"
        return None
