package MpnsSim::Exchange;

# One request to a push service and its answer: what a service
# (MpnsSim::Service) sees of the server.  The request is complete (body
# read, framing checked); the service answers through answer(), or with one
# of the transport misbehaviours (send_broken, hang), now or from a timer
# (later).  Every exchange is in /_sim/requests, with its status once a
# complete answer is written.

use v5.36;

use MpnsSim::Http qw(header_values);
use MpnsSim::Log ();

sub new ($class, $c, $req, $rec) {
    return bless { c => $c, req => $req, rec => $rec }, $class;
}

sub method ($ex) { return $ex->{req}{method} }

# The request-target as sent, and its path (no query).
sub target ($ex) { return $ex->{req}{target} }

sub path ($ex) { return $ex->{req}{path} }

# Every value of a request header (case-insensitive name), in order.
sub header ($ex, $name) { return header_values($ex->{req}, $name) }

sub body ($ex) { return $ex->{req}{body} }

# Whether the request came over TLS.
sub tls ($ex) { return $ex->{c}{tls} ? 1 : 0 }

# How many requests the connection has carried, this one included.
sub nth_on_connection ($ex) { return $ex->{c}{nreq} }

# A field the service declared in record_fields: record(NAME) reads it,
# record(NAME, VALUE) sets it (a JSON value: string, number,
# JSON::PP::true/false or undef).
sub record ($ex, $name, @value) {
    $ex->{rec}{fields}{$name} = $value[0] if @value;
    return $ex->{rec}{fields}{$name};
}

# The next scripted answer for the request's path (POST /_sim/script), or
# undef: {state => NAME} or {status => N, headers => {...}, delay_ms => N}.
sub script ($ex) {
    return $ex->{c}{server}->next_script($ex->{req}{path});
}

# A complete answer: status, [[name, value], ...] after Date and Server,
# options close => 1 (close the connection after it), body, type.
sub answer ($ex, $status, $headers = [], %o) {
    $ex->{c}->answer($ex->{req}, $ex->{rec}, $status, $headers, %o);
}

# Writes bytes that are not a valid answer ('' for none), then closes.
sub send_broken ($ex, $bytes) { $ex->{c}->send_broken($bytes) }

# Never answers; the connection stays open until the peer closes it.
sub hang ($ex) { $ex->{c}->hang }

# Runs $cb (which answers) after $ms milliseconds; the connection's next
# requests wait, other connections do not.
sub later ($ex, $ms, $cb) { $ex->{c}->hold($ms, $cb) }

sub debug ($ex, $msg) { MpnsSim::Log::debug($msg) }

1;
