# Deliberately failing scenario for negative.py: each way a scenario can fail
# must make run.py fail, and name the failure. Not a scenario to run by hand.
# rig: bind=dead:beef
# rig: timeout=120
result negative.pass true "a passing result"
result negative.fail false "a failing result"
no_such_command_rig_negative
rig-probe cdev dead:beef --name missing
exit 7
