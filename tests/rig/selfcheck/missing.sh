# For negative.py: every result this scenario emits passes and it exits 0,
# but it declares one result that never comes. run.py must fail the run and
# name it. Not a scenario to run by hand.
# rig: expect=negative.pass,negative.never.*
# rig: timeout=120
result negative.pass true "a passing result"
exit 0
