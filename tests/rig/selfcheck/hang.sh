# Hangs after one passing result, for negative.py's timeout check.
# rig: timeout=600
result negative.before_hang true "about to hang"
sleep 100000
