package MpnsSim::Server;

# The HTTP/1.1 server of the plain and TLS listeners, with no push protocol
# in it: keep-alive and tolerated pipelining (requests on a connection are
# answered strictly in order: the next one is parsed only once the previous
# one has been answered), Content-Length framing, "Expect: 100-continue",
# the client certificate check of TLS listeners, the record of every request
# a push service got and the connection numbering for /_sim/requests,
# connection and in-flight counts for /_sim/stats, scripted answers per
# path, and the dispatch of a request to the control endpoint (/_sim/...,
# MpnsSim::Control) or to the first push service that matches it
# (MpnsSim::Service), which answers it through an MpnsSim::Exchange.

use v5.36;

use MpnsSim::Conn;
use MpnsSim::Control;
use MpnsSim::Exchange;
use MpnsSim::Log qw(debug);
use MpnsSim::Tls;

# new(loop => MpnsSim::Loop, name => text of the Server header,
#     tls => MpnsSim::Tls, needed for accept_tls)
sub new ($class, %o) {
    my $self = bless {
        loop => $o{loop}, name => $o{name}, tls => $o{tls},
        services => [],
        counters => [],     # other parts' stats and reset (MpnsSim::Tls...)
        fields => [],       # [name, default] the services add to records
        # Everything below is cleared by POST /_sim/reset.
        epoch => 0,         # bumped on reset; ties connection numbers to it
        accepted => 0,      # service connections since reset
        conn_seq => 0,      # last connection number handed out since reset
        records => [],      # every service request since reset
        scripts => {},      # path => { responses => [...], next => n }
        in_flight => 0,     # service requests received, not yet answered
        max_in_flight => 0, # the most at once since reset
    }, $class;
    $self->{control} = MpnsSim::Control->new($self);
    return $self;
}

# A push service (MpnsSim::Service); the first one whose match() takes a
# request answers it.
sub add_service ($self, $service) {
    push @{ $self->{services} }, $service;
    push @{ $self->{fields} }, $service->record_fields;
}

# Something else whose stats() go into /_sim/stats and whose reset() runs
# on /_sim/reset.
sub add_counters ($self, $part) {
    push @{ $self->{counters} }, $part;
}

sub services ($self) { return @{ $self->{services} } }

sub counters ($self) { return @{ $self->{counters} } }

# A connection accepted on a plain listener.
sub accept_plain ($self, $fh) {
    MpnsSim::Server::Conn->new($self->{loop}, $fh, server => $self);
}

# A connection accepted on a TLS listener (strict: the handshake needs a
# valid client certificate); its handshake runs from the event loop.
sub accept_tls ($self, $fh, $strict) {
    my $tls = $self->{tls}->start($fh, $strict) // return;
    MpnsSim::Server::Conn->new($self->{loop}, $fh, server => $self,
                               tls => $tls);
}

# A complete request: to the control endpoint, or recorded and given to a
# service.  A request on a TLS connection whose client certificate is
# checked and missing or not verified is answered 403 first.
sub dispatch ($self, $c, $req) {
    if ($req->{control}) {
        $self->{control}->handle($c, $req);
        return;
    }
    my $ex = MpnsSim::Exchange->new($c, $req, $self->record($c, $req));
    $c->{pending}++;
    $self->{max_in_flight} = $self->{in_flight}
        if ++$self->{in_flight} > $self->{max_in_flight};
    if (MpnsSim::Tls::client_refused($c->{tls})) {
        debug('rejected: no valid client certificate');
        $ex->answer(403);
        return;
    }
    for my $service (@{ $self->{services} }) {
        next unless $service->match($ex);
        $service->handle($ex);
        return;
    }
    debug("no service for $req->{path}");
    $ex->answer(404);
}

# Stores a request for /_sim/requests; its status is filled in when it is
# answered, the services' fields when they say.
sub record ($self, $c, $req) {
    if ($c->{kind} eq 'service' && $c->{no_epoch} != $self->{epoch}) {
        $c->{no} = ++$self->{conn_seq};
        $c->{no_epoch} = $self->{epoch};
    }
    my $t = $c->{tls};
    my $rec = {
        seq => scalar(@{ $self->{records} }) + 1,
        time => Time::HiRes::time(),
        conn => ($c->{kind} eq 'service' ? $c->{no} : 0),
        method => $req->{method}, target => $req->{target},
        version => $req->{version},
        headers => [ map { [ $_->[0], $_->[1] ] } @{ $req->{headers} } ],
        body => $req->{body}, status => undef,
        tls => ($t ? 1 : 0),
        sni => ($t ? $t->{sni} : undef),
        client_cn => ($t ? $t->{client_cn} : undef),
        resumed => ($t ? $t->{resumed} : 0),
        fields => { map { @$_ } @{ $self->{fields} } },
    };
    push @{ $self->{records} }, $rec;
    return $rec;
}

sub records ($self) { return @{ $self->{records} } }

# The names of the services' record fields, in order.
sub field_names ($self) { return map { $_->[0] } @{ $self->{fields} } }

# Sets the scripted answers of a path (none: removes them).
sub set_script ($self, $path, $responses) {
    if (@$responses) {
        $self->{scripts}{$path} = { responses => $responses, next => 0 };
    } else {
        delete $self->{scripts}{$path};
    }
}

# The next scripted answer for a path, the last one repeating; undef when
# the path has no script.
sub next_script ($self, $path) {
    my $s = $self->{scripts}{$path} // return undef;
    my $list = $s->{responses};
    my $r = $list->[ $s->{next} < @$list ? $s->{next} : $#$list ];
    $s->{next}++;
    return $r;
}

# Open connections are counted live, so they need no reset handling.
sub stats ($self) {
    my $open = grep { ($_->{kind} // '') eq 'service' } $self->{loop}->conns;
    return { accepted => $self->{accepted} + 0, open => $open + 0,
             in_flight => $self->{in_flight} + 0,
             max_in_flight => $self->{max_in_flight} + 0,
             requests => scalar(@{ $self->{records} }) };
}

# Bumping the epoch renumbers connections that outlive the reset.
sub reset ($self) {
    $self->{epoch}++;
    $self->{accepted} = 0;
    $self->{conn_seq} = 0;
    $self->{records} = [];
    $self->{scripts} = {};
    $self->{max_in_flight} = $self->{in_flight};
}


package MpnsSim::Server::Conn;

# A connection of the server: TLS handshake, reading, request framing and
# answers.  Fields besides MpnsSim::Conn's: server, tls (undef on plain
# listeners), kind (set by the first request: service or control), no and
# no_epoch (its number in records), nreq (complete requests read), cur (the
# request whose body is being read), pending (requests of it in flight),
# silent (never answers again).

use v5.36;

use parent -norequire, 'MpnsSim::Conn';

use Errno qw(EAGAIN EWOULDBLOCK EINTR);

use MpnsSim::Http qw(HEADER_LIMIT BODY_HARD_CAP READ_CHUNK CONTINUE
                     $TOKEN_RE reason http_date header_values keep_alive);
use MpnsSim::Log qw(debug);

sub new ($class, $loop, $fh, %fields) {
    return $class->SUPER::new($loop, $fh, tls => undef, kind => undef,
                              no => 0, no_epoch => -1, nreq => 0,
                              cur => undef, pending => 0, silent => 0,
                              %fields);
}

sub in_handshake ($c) { return $c->{tls} && $c->{tls}{handshake} }

sub wants ($c) {
    return (!$c->{tls}{want_write}, $c->{tls}{want_write})
        if $c->in_handshake;
    return $c->SUPER::wants;
}

sub readable ($c) {
    return $c->handshake if $c->in_handshake;
    $c->read_input;
}

sub writable ($c) {
    return $c->handshake if $c->in_handshake;
    $c->flush;
}

# Advances the TLS handshake; a failed one closes the connection.  Input
# already decrypted by OpenSSL is read at once (select cannot see it).
sub handshake ($c) {
    my $r = $c->{server}{tls}->handshake($c->{fh}, $c->{tls});
    if ($r eq 'failed') {
        $c->close;
    } elsif ($r eq 'done' && $c->{fh}->pending) {
        $c->read_input;
    }
}

# Reads what is available; EOF or a hard error ends the connection.  On
# TLS, records OpenSSL already holds decrypted (pending) are read too, as
# select cannot see them.  A TLS error is taken as the end of input, so
# that answers already queued are still sent.
sub read_input ($c) {
    my ($buf, $end) = ('', undef);
    while (1) {
        my $n = sysread($c->{fh}, $buf, READ_CHUNK, length $buf);
        if (!defined $n) {
            last if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
            $end = $c->{tls} ? 'eof' : 'error';
            last;
        }
        if ($n == 0) {
            $end = 'eof';
            last;
        }
        last unless $c->{tls} && $c->{fh}->pending;
    }
    # Nothing more will be answered on these: drop the input.
    if ($buf ne '' && !($c->{silent} || $c->{lingering} || $c->{close_after})) {
        $c->{rbuf} .= $buf;
        $c->process_input;
    }
    return if !defined $end || $c->{closed};
    if ($end eq 'eof') {
        $c->input_ended;
    } else {
        $c->close;
    }
}

# The peer closed (or half-closed) its side.  Answers already queued are
# still flushed; a peer that leaves while we hold back an answer (slow,
# silent) has given up, so its connection is dropped at once.
sub input_ended ($c) {
    $c->{eof} = 1;
    if ($c->{silent} || $c->{lingering} || $c->{waiting} || $c->{wbuf} eq '') {
        $c->close;
    }
}

sub shutdown_write ($c) {
    MpnsSim::Tls::shutdown($c->{fh}, $c->{tls}) if $c->{tls};   # close_notify
    $c->SUPER::shutdown_write;
}

sub closed ($c) {
    $c->{server}{in_flight} -= $c->{pending};
    $c->{pending} = 0;
}

# Parses and dispatches every complete request in the read buffer, one at
# a time; stops while an answer is pending so answers stay in order.
sub process_input ($c) {
    while (!$c->{closed} && !$c->{waiting} && !$c->{silent}
           && !$c->{close_after}) {
        my $req = $c->{cur};
        if (!$req) {
            $c->{rbuf} =~ s/\A(?:\r?\n)+//;    # RFC 9112 2.2: skip blank lines
            return if $c->{rbuf} eq '';
            $req = $c->parse_head or return;
            $c->{cur} = $req;
        }
        return if length($c->{rbuf}) < $req->{length};
        $req->{body} = substr($c->{rbuf}, 0, $req->{length}, '');
        $c->{cur} = undef;
        $c->{nreq}++;
        $c->{server}->dispatch($c, $req);
    }
}

# Parses a request head off the read buffer.  Returns the request, or undef
# when more input is needed or the request was fatally bad (then an error
# was answered and the connection is closing).
sub parse_head ($c) {
    my $area = substr($c->{rbuf}, 0, HEADER_LIMIT);
    my $head_len;
    $head_len = $+[0] if $area =~ /\n\r?\n/;
    if (!defined $head_len) {
        $c->fatal(undef, 431) if length($c->{rbuf}) >= HEADER_LIMIT;
        return undef;
    }
    my $head = substr($c->{rbuf}, 0, $head_len, '');
    my @lines = split /\r?\n/, $head;

    my $line = shift @lines;
    my ($method, $target, $version) =
        $line =~ m{\A($TOKEN_RE) ([^\s]+) (HTTP/[0-9]\.[0-9])\z};
    if (!defined $method) {
        return $c->fatal(undef, 400, 'bad request line');
    }
    if ($version ne 'HTTP/1.1' && $version ne 'HTTP/1.0') {
        return $c->fatal(undef, 505);
    }
    my $path;
    if ($target =~ m{\A/}) {
        ($path) = $target =~ /\A([^?#]*)/;
    } elsif ($target =~ m{\Ahttps?://[^/?#]*(/[^?#]*)?}i) {   # absolute-form
        $path = $1 // '/';
    } else {
        return $c->fatal(undef, 400, 'bad request-target');
    }

    my @headers;
    for my $h (@lines) {
        my ($name, $value) = $h =~ /\A($TOKEN_RE):[ \t]*(.*?)[ \t]*\z/s;
        if (!defined $name || $value =~ /[\x00\r\n]/) {
            return $c->fatal(undef, 400, 'bad header line');
        }
        push @headers, [$name, $value];
    }

    my $req = {
        method => $method, target => $target, version => $version,
        path => $path, headers => \@headers, body => '', length => 0,
        control => ($path =~ m{\A/_sim/} ? 1 : 0),
    };

    # The first request decides what kind of connection this is.
    if (!defined $c->{kind}) {
        $c->{kind} = $req->{control} ? 'control' : 'service';
        $c->{server}{accepted}++ if $c->{kind} eq 'service';
    }

    $req->{keep_alive} =
        keep_alive($version, header_values($req, 'Connection'));

    # Framing: Content-Length only.
    if (header_values($req, 'Transfer-Encoding')) {
        return $c->fatal($req, 400, 'Transfer-Encoding not supported');
    }
    my @cl = header_values($req, 'Content-Length');
    if (@cl) {
        my %distinct = map { $_ => 1 } map { split /[ \t]*,[ \t]*/ } @cl;
        my @v = keys %distinct;
        if (@v != 1 || $v[0] !~ /\A[0-9]{1,15}\z/) {
            return $c->fatal($req, 400, 'bad Content-Length');
        }
        $req->{length} = $v[0] + 0;
    } elsif ($method eq 'POST' && !$req->{control}) {
        return $c->fatal($req, 411);
    }
    if ($req->{length} > BODY_HARD_CAP) {
        return $c->fatal($req, 413);
    }

    # Let clients that wait for it (.NET, curl) send their body.
    if ($version eq 'HTTP/1.1' && $req->{length} > length($c->{rbuf})
        && grep { lc($_) eq '100-continue' } header_values($req, 'Expect')) {
        $c->{wbuf} .= CONTINUE;
        $c->flush;
    }
    return $req;
}

# Answers a request that cannot be framed or parsed and closes the
# connection; returns undef.  Service requests whose head was parsed are
# still recorded.
sub fatal ($c, $req, $status, $why = undef) {
    debug("fatal $status" . (defined $why ? " ($why)" : ''));
    my $rec;
    $rec = $c->{server}->record($c, $req) if $req && !$req->{control};
    $c->answer($req, $rec, $status, [], close => 1);
    return undef;
}

# Queues a complete answer to $req (undef: one that could not be parsed)
# with its record $rec (undef: none).  $headers is [[name, value], ...]
# placed after Date and Server.  Options: body, type (Content-Type), close.
sub answer ($c, $req, $rec, $status, $headers, %o) {
    return if $c->{closed};
    my $close = $o{close} || !$req || !$req->{keep_alive};
    my $body = $o{body} // '';
    $body = '' if $req && $req->{method} eq 'HEAD';
    my @h = (['Date', http_date()], ['Server', $c->{server}{name}],
             @$headers);
    push @h, ['Content-Type', $o{type}] if defined $o{type};
    push @h, ['Content-Length', length($o{body} // '')];
    if ($close) {
        push @h, ['Connection', 'close'];
    } elsif ($req->{version} eq 'HTTP/1.0') {
        push @h, ['Connection', 'keep-alive'];
    }
    $c->{wbuf} .= "HTTP/1.1 $status " . reason($status) . "\r\n"
        . join('', map { "$_->[0]: $_->[1]\r\n" } @h) . "\r\n" . $body;
    $c->{close_after} = 1 if $close;
    $rec->{status} = $status if $rec;
    if ($rec && $c->{pending}) {
        $c->{pending}--;
        $c->{server}{in_flight}--;
    }
    debug(sprintf '%s %s -> %d', $req ? $req->{method} : '-',
          $req ? $req->{target} : '-', $status);
    $c->flush;
}

# Queues bytes that are not a valid answer (none at all is allowed), then
# closes.
sub send_broken ($c, $bytes) {
    $c->{wbuf} .= $bytes;
    $c->{close_after} = 1;
    $c->flush;
}

# Never answers again; the connection stays until the peer closes it.
sub hang ($c) {
    $c->{silent} = 1;
    $c->{rbuf} = '';
}

# Holds the connection's answers back for $ms milliseconds, then runs $send
# and resumes reading pipelined requests; other connections keep running.
sub hold ($c, $ms, $send) {
    $c->{waiting} = 1;
    $c->{loop}->add_timer($ms / 1000, sub {
        return if $c->{closed};
        $c->{waiting} = 0;
        $send->();
        $c->process_input;
        $c->close if $c->{eof} && !$c->{waiting} && $c->{wbuf} eq '';
    });
}

1;
