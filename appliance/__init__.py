"""Antrean lobby appliance: domain, store and services."""

__version__ = "0.1.0"
# The day this release was built. A clock earlier than this is certainly wrong
# (a Raspberry Pi without RTC boots in the past); see appliance.clock.
BUILD_DATE = "2026-11-29"
