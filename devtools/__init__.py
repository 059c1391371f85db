"""Development and demonstration tools: never installed on an appliance.

The reference central server, the demo, the simulated lobby, the process supervisor and the
hardware doubles the tests and benchmarks drive. They may import everything; nothing under
appliance/, drivers/, display/ or sync/ imports them.
"""
