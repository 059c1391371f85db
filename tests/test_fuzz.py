"""Property tests: random schedules and random ticket strings never crash the verifiers.

The schedule verifier either returns a Schedule or raises ScheduleRejected, for any body,
signed or not; the ticket parser returns a classification for any input. atheris runs the
same targets for longer in ``make soak`` when it is installed (tests/fuzz_targets.py).
"""

import json

from conftest import KEY, appointment, schedule_doc
from fuzz_targets import FUZZ_EXAMPLES, check_schedule_body, check_ticket_payload
from hypothesis import given, settings
from hypothesis import strategies as st

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20)

FIELDS = ["format", "office", "date", "version", "generated_at", "opening_hours", "services",
          "counters", "appointments", "announcements"]
APPT_FIELDS = ["booking_code", "name", "salutation", "service", "slot_start", "slot_end",
               "priority", "status"]


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_signed_and_unsigned(body):
    check_schedule_body(body, KEY.sign_header(body))
    check_schedule_body(body, None)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.sampled_from(FIELDS), JSON, st.sampled_from(APPT_FIELDS), JSON)
def test_valid_schedule_with_one_field_replaced(field, value, appt_field, appt_value):
    day = "2026-11-30"
    for mutate_top in (True, False):
        doc = schedule_doc(day, [appointment("K7Q2M9XA", day)])
        if mutate_top:
            doc[field] = value
        else:
            doc["appointments"][0][appt_field] = appt_value
        body = json.dumps(doc).encode()
        check_schedule_body(body, KEY.sign_header(body))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.text(max_size=200))
def test_ticket_strings(text):
    check_ticket_payload(text.encode("utf-8", "surrogatepass"))
    check_ticket_payload(("AT1." + text).encode("utf-8", "surrogatepass"))
