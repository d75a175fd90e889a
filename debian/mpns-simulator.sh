#!/bin/sh
# The simulator is installed with its Perl modules beside it, where it
# looks for them (FindBin): run it from there.
exec /usr/share/mpns-simulator/mpns-simulator "$@"
