"""Print the fault suite's figures, one row per test, as its tests wrote
them (relais_harness.fault_row), then start the table afresh."""
import os
import sys

path = sys.argv[1]
rows = open(path).read().splitlines() if os.path.exists(path) else []
print("| test | events | faults injected | lost | doubled | recovery | notes |")
print("|---|---|---|---|---|---|---|")
for row in rows:
    print(row)
if not rows:
    print("| (no fault test wrote figures in this run) | | | | | | |")
if os.path.exists(path):
    os.remove(path)
