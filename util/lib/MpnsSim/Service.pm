package MpnsSim::Service;

# The interface between the protocol-neutral server (MpnsSim::Server) and a
# push service simulated on top of it (MpnsSim::Service::Mpns; a WNS one
# would be another subclass).  The server calls, for every request not
# under /_sim/ (after recording it, and after refusing it with 403 on a TLS
# connection whose client certificate is checked and did not verify):
#
#   match($ex)          true if this service answers the request (an
#                       MpnsSim::Exchange); the first service that matches
#                       gets it, a request no service matches is answered
#                       404
#   handle($ex)         answers it, at once or later, through $ex
#
# and for the control endpoint:
#
#   stats()             a hash merged into GET /_sim/stats
#   reset()             forgets what POST /_sim/reset clears
#   record_fields()     ([NAME, DEFAULT], ...): fields the service adds to
#                       each record of GET /_sim/requests, in this order
#                       after the server's own, set with $ex->record
#   knows_state($name)  true if {"state": NAME} is a valid scripted answer
#                       (POST /_sim/script) for this service
#
# The defaults below match every request and add nothing.

use v5.36;

sub match ($self, $ex) { return 1 }

sub handle ($self, $ex) { die ref($self) . " answers nothing\n" }

sub stats ($self) { return {} }

sub reset ($self) {}

sub record_fields ($self) { return () }

sub knows_state ($self, $name) { return 0 }

1;
