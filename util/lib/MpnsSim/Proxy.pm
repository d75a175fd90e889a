package MpnsSim::Proxy;

# A minimal forward HTTP proxy served by the simulator's event loop, for
# clients that reach the push service through one.  A client connection's
# absolute-form requests are relayed one at a time to their origin over one
# kept-alive origin connection (a new one when the port changes or the old
# one cannot be reused); CONNECT turns the client connection into a tunnel.
# Only 127.0.0.1, "localhost" and names under .test are allowed as targets,
# and all of them connect to 127.0.0.1.

use v5.36;

use IO::Socket::IP;
use Socket qw(IPPROTO_TCP TCP_NODELAY);

# new(loop => MpnsSim::Loop, name => text of the Server header)
sub new ($class, %o) {
    return bless { loop => $o{loop}, name => $o{name}, requests => 0,
                   connects => 0, connections => 0 }, $class;
}

sub stats ($self) {
    return { proxy_requests => $self->{requests} + 0,
             proxy_connects => $self->{connects} + 0,
             proxy_connections => $self->{connections} + 0 };
}

sub reset ($self) {
    $self->{requests} = $self->{connects} = $self->{connections} = 0;
}

# A client connection accepted on a proxy listener.
sub accept ($self, $fh) {
    $self->{connections}++;
    MpnsSim::Proxy::Conn->new($self->{loop}, $fh, proxy => $self,
                              type => 'client', cur => undef, busy => 0,
                              up => undef, peer => undef);
}

# Opens a non-blocking connection to 127.0.0.1:$port for $client.
sub open_origin ($self, $client, $port) {
    my $fh = IO::Socket::IP->new(PeerHost => '127.0.0.1', PeerPort => $port,
                                 Proto => 'tcp', Blocking => 0);
    return undef unless $fh;
    setsockopt($fh, IPPROTO_TCP, TCP_NODELAY, 1);
    return MpnsSim::Proxy::Conn->new($self->{loop}, $fh, proxy => $self,
                                     type => 'origin', connecting => 1,
                                     client => $client, port => $port,
                                     resp => undef);
}


package MpnsSim::Proxy::Conn;

# A connection of the proxy: a client's (type client: fields cur, busy, up
# = its origin connection, peer once it is a tunnel) or an origin's (type
# origin: connecting, client, port, resp = the answer being read, peer
# once it is a tunnel).

use v5.36;

use parent -norequire, 'MpnsSim::Conn';

use Errno qw(EAGAIN EWOULDBLOCK EINTR);
use Socket qw(SOL_SOCKET SO_ERROR);

use MpnsSim::Conn;
use MpnsSim::Http qw(HEADER_LIMIT BODY_HARD_CAP READ_CHUNK CONTINUE
                     $TOKEN_RE reason header_values keep_alive);
use MpnsSim::Log qw(debug);

sub wants ($c) {
    return (0, 1) if $c->{connecting};
    my ($r, $w) = $c->SUPER::wants;
    $r = 0 if $c->{peer}
        && length($c->{peer}{wbuf}) >= MpnsSim::Conn::RBUF_PAUSE;
    return ($r, $w);
}

sub writable ($c) {
    return $c->connected if $c->{connecting};
    $c->flush;
}

# Reads from a client, an origin connection or a tunnel end.
sub readable ($c) {
    my $n = sysread($c->{fh}, my $buf, READ_CHUNK);
    if (!defined $n) {
        return if $! == EAGAIN || $! == EWOULDBLOCK || $! == EINTR;
        $n = 0;                         # ECONNRESET and the like: as EOF
    }
    if ($n == 0) {
        $c->input_ended;
        return;
    }
    return if $c->{lingering} || $c->{close_after};
    if (my $peer = $c->{peer}) {        # tunnel: copy to the other end
        $peer->{wbuf} .= $buf;
        $peer->flush;
        return;
    }
    $c->{rbuf} .= $buf;
    if ($c->{type} eq 'client') {
        $c->client_input;
    } else {
        $c->origin_input;
    }
}

# A client's origin connection goes with it; the other end of a tunnel
# gets what is still queued for it, then is closed as well.
sub closed ($c) {
    delete $c->{client};
    if (my $u = delete $c->{up}) {
        $u->close;
    }
    if (my $p = delete $c->{peer}) {
        delete $p->{peer};
        $p->{close_after} = 1;
        $p->flush;
    }
}

# The other end of a tunnel is closed once what is queued for it and for
# this end is written.
sub end_tunnel ($c) {
    my $p = delete $c->{peer};
    delete $p->{peer};
    $p->{close_after} = 1;
    $p->flush;
    $c->{close_after} = 1;
    $c->flush;
}

# The end of input on a proxy connection.
sub input_ended ($c) {
    $c->{eof} = 1;
    if ($c->{lingering} || $c->{type} eq 'client') {
        # A client that leaves takes its origin connection (or tunnel) with
        # it; queued output is dropped unless it is a tunnel end.
        if ($c->{peer} && $c->{wbuf} ne '') {
            $c->end_tunnel;
            return;
        }
        $c->close;
        return;
    }
    # An origin connection (or the origin end of a tunnel).
    if ($c->{peer}) {
        if ($c->{wbuf} ne '') {
            $c->end_tunnel;
        } else {
            $c->close;
        }
        return;
    }
    my $client = $c->{client};
    $c->close;
    return unless $client && !$client->{closed};
    delete $client->{up} if $client->{up} && $client->{up} == $c;
    return unless $client->{busy} && $c->{for_request};
    my $r = $c->{resp};
    if ($r && $r->{len} eq 'eof') {
        $client->respond($c, $r, $c->{rbuf});
    } else {
        # Incomplete or not HTTP (reset, garbage, stale): pass on what came,
        # then close, as the origin did.
        debug('proxy: origin closed mid-answer');
        $client->{wbuf} .= $c->{rbuf};
        $client->{close_after} = 1;
        $client->flush;
    }
}

# Parses requests from a client, one at a time.
sub client_input ($c) {
    while (!$c->{closed} && !$c->{busy} && !$c->{close_after}
           && !$c->{peer}) {
        my $req = $c->{cur};
        if (!$req) {
            $c->{rbuf} =~ s/\A(?:\r?\n)+//;
            return if $c->{rbuf} eq '';
            my $area = substr($c->{rbuf}, 0, HEADER_LIMIT);
            if ($area !~ /\n\r?\n/) {
                $c->answer(431, 1) if length($c->{rbuf}) >= HEADER_LIMIT;
                return;
            }
            my $head = substr($c->{rbuf}, 0, $+[0], '');
            $req = $c->parse_head($head) or return;
            if ($req->{method} eq 'CONNECT') {
                $c->tunnel($req);
                return;
            }
            $c->{cur} = $req;
        }
        return if length($c->{rbuf}) < $req->{length};
        $req->{body} = substr($c->{rbuf}, 0, $req->{length}, '');
        $c->{cur} = undef;
        if ($req->{deny}) {
            $c->answer($req->{deny}, !$req->{keep_alive}, $req);
            next;
        }
        $c->forward($req);
    }
}

# Parses a client's request head; answers errors itself (and returns
# undef).
sub parse_head ($c, $head) {
    my @lines = split /\r?\n/, $head;
    my ($method, $target, $version) = (shift @lines) =~
        m{\A($TOKEN_RE) ([^\s]+) (HTTP/1\.[01])\z};
    return $c->answer(400, 1) unless defined $method;
    my @headers;
    for my $h (@lines) {
        my ($name, $value) = $h =~ /\A($TOKEN_RE):[ \t]*(.*?)[ \t]*\z/s;
        return $c->answer(400, 1) unless defined $name;
        push @headers, [$name, $value];
    }
    my $req = { method => $method, target => $target, version => $version,
                headers => \@headers, length => 0, body => '' };
    $req->{keep_alive} = keep_alive($version,
                                    header_values($req, 'Connection'),
                                    header_values($req, 'Proxy-Connection'));

    my ($authority, $path);
    if ($method eq 'CONNECT') {
        $authority = $target;
    } elsif ($target =~ m{\Ahttp://([^/?#]+)([^#]*)\z}i) {
        ($authority, $path) = ($1, $2);
        $path = "/$path" if $path !~ m{\A/};
    } else {
        debug("proxy: not an absolute http:// target: $target");
        return $c->answer(400, 1);
    }
    my ($host, $port) =
        $authority =~ /\A([^:\[\]\@]+|\[[^\]]+\])(?::([0-9]{1,5}))?\z/;
    $port //= $method eq 'CONNECT' ? undef : 80;
    return $c->answer(400, 1)
        unless defined $host && defined $port && $port > 0 && $port <= 65535;
    $req->{host} = $host;
    $req->{port} = $port + 0;
    $req->{authority} = $authority;
    $req->{path} = $path;
    if (!allowed($host)) {
        debug("proxy: target $authority not allowed");
        return $c->answer(403, 1, $req) if $method eq 'CONNECT';
        $req->{deny} = 403;             # answered once the body is read
    }
    return $req if $method eq 'CONNECT';

    if (header_values($req, 'Transfer-Encoding')) {
        return $c->answer(400, 1);
    }
    my @cl = header_values($req, 'Content-Length');
    if (@cl) {
        return $c->answer(400, 1)
            unless @cl == 1 && $cl[0] =~ /\A[0-9]{1,15}\z/;
        $req->{length} = $cl[0] + 0;
    }
    return $c->answer(413, 1) if $req->{length} > BODY_HARD_CAP;
    if (!$req->{deny}
        && grep { lc($_) eq '100-continue' } header_values($req, 'Expect')) {
        $req->{expect} = 1;
        if ($version eq 'HTTP/1.1' && $req->{length} > length($c->{rbuf})) {
            $c->{wbuf} .= CONTINUE;
            $c->flush;
        }
    }
    return $req;
}

# Only loopback origins: 127.0.0.1, localhost and names under .test (all
# connect to 127.0.0.1).
sub allowed ($host) {
    $host = lc $host;
    return $host eq '127.0.0.1' || $host eq 'localhost'
        || $host =~ /\A[a-z0-9_.-]+\.test\.?\z/;
}

# An answer of the proxy itself to a client; returns undef.  Without $close
# the next request is read.
sub answer ($c, $status, $close, $req = undef) {
    $c->{wbuf} .= "HTTP/1.1 $status " . reason($status)
        . "\r\nServer: $c->{proxy}{name}\r\nContent-Length: 0\r\n"
        . ($close ? "Connection: close\r\n" : '') . "\r\n";
    debug(sprintf 'proxy %s %s -> %d', $req ? $req->{method} : '-',
          $req ? $req->{target} : '-', $status);
    $c->{close_after} = 1 if $close;
    $c->{cur} = undef;
    $c->{busy} = 0;
    $c->flush;
    return undef;
}

# The outcome of a non-blocking connect to an origin.
sub connected ($u) {
    my $err = unpack 'i', getsockopt($u->{fh}, SOL_SOCKET, SO_ERROR) // '';
    my $client = $u->{client};
    $u->{connecting} = 0;
    if ($err) {
        debug("proxy: connect to 127.0.0.1:$u->{port} failed: "
              . ($! = $err));
        $u->close;
        if ($client && !$client->{closed}) {
            delete $client->{up};
            $client->answer(502, 1);
        }
        return;
    }
    if ($u->{tunnel}) {
        $u->{proxy}{connects}++;
        delete $u->{client};
        delete $client->{up};
        $u->{peer} = $client;
        $client->{peer} = $u;
        $client->{wbuf} .= "HTTP/1.1 200 Connection established\r\n\r\n";
        $u->{wbuf} .= $client->{rbuf};  # sent right after the CONNECT head
        $client->{rbuf} = '';
        $client->flush;
    }
    $u->flush;
}

# CONNECT host:port: a tunnel to 127.0.0.1:port.
sub tunnel ($c, $req) {
    debug("proxy CONNECT $req->{authority}");
    $c->{busy} = 1;
    my $u = $c->{proxy}->open_origin($c, $req->{port});
    return $c->answer(502, 1, $req) unless $u;
    $u->{tunnel} = 1;
    $c->{up} = $u;
}

# Relays an absolute-form request in origin form, over the client's origin
# connection when it is idle and to the same port.
sub forward ($c, $req) {
    $c->{proxy}{requests}++;
    $c->{busy} = 1;
    $c->{req} = $req;
    my %drop = map { $_ => 1 } qw(connection proxy-connection keep-alive
                                  proxy-authorization te trailer upgrade);
    $drop{expect} = 1 if $req->{expect};
    my @h = grep { !$drop{ lc $_->[0] } } @{ $req->{headers} };
    unshift @h, ['Host', $req->{authority}]
        unless grep { lc($_->[0]) eq 'host' } @h;
    my $bytes = "$req->{method} $req->{path} HTTP/1.1\r\n"
        . join('', map { "$_->[0]: $_->[1]\r\n" } @h) . "\r\n" . $req->{body};
    debug("proxy $req->{method} $req->{target}");

    my $u = $c->{up};
    if ($u && ($u->{closed} || $u->{eof} || $u->{port} != $req->{port}
               || $u->{rbuf} ne '')) {
        $u->close;
        $u = undef;
    }
    if (!$u) {
        $u = $c->{proxy}->open_origin($c, $req->{port})
            or return $c->answer(502, !$req->{keep_alive}, $req);
        $c->{up} = $u;
    }
    $u->{for_request} = 1;
    $u->{head_request} = $req->{method} eq 'HEAD';
    $u->{resp} = undef;
    $u->{wbuf} .= $bytes;
    $u->flush unless $u->{connecting};
}

# Parses an origin's answer; once complete, relays it.
sub origin_input ($u) {
    my $client = $u->{client};
    if (!$client || $client->{closed} || !$u->{for_request}) {
        $u->close;                      # unasked-for bytes: not reusable
        return;
    }
    while (!$u->{resp}) {
        return unless $u->{rbuf} =~ /\n\r?\n/;
        my $hlen = $+[0];
        my ($status) = $u->{rbuf} =~ m{\AHTTP/1\.[01] ([0-9]{3})[^\r\n]*\r?\n};
        if (!defined $status) {
            $u->{resp} = { len => 'raw' };      # relayed as is at EOF
            return;
        }
        if ($status =~ /\A1/) {                 # interim answers: dropped
            substr($u->{rbuf}, 0, $hlen, '');
            next;
        }
        my $head = substr($u->{rbuf}, 0, $hlen);
        my %h;
        for my $line (split /\r?\n/, $head) {
            my ($n, $v) = $line =~ /\A($TOKEN_RE):[ \t]*(.*?)[ \t]*\z/ or next;
            push @{ $h{lc $n} }, $v;
        }
        my $len;
        if ($u->{head_request} || $status == 204 || $status == 304) {
            $len = 0;
        } elsif (grep { /chunked/i } @{ $h{'transfer-encoding'} // [] }) {
            $len = 'chunked';
        } elsif (my $cl = $h{'content-length'}) {
            $len = $cl->[0] =~ /\A[0-9]+\z/ ? $cl->[0] + 0 : 'eof';
        } else {
            $len = 'eof';
        }
        $u->{resp} = {
            hlen => $hlen, len => $len, status => $status,
            close => (grep { /(?:\A|,)[ \t]*close[ \t]*(?:,|\z)/i }
                      @{ $h{connection} // [] }) ? 1 : 0,
        };
    }
    my $r = $u->{resp};
    return if $r->{len} eq 'eof' || $r->{len} eq 'raw';
    my $end;
    if ($r->{len} eq 'chunked') {
        my $pos = $r->{hlen};
        while (1) {
            pos($u->{rbuf}) = $pos;
            return unless $u->{rbuf} =~ /\G([0-9a-fA-F]+)[^\r\n]*\r\n/gc;
            my $size = hex $1;
            $pos = pos($u->{rbuf});
            if ($size == 0) {
                return unless $u->{rbuf} =~ /\G(?:[^\r\n]+\r\n)*\r\n/gc;
                $end = pos($u->{rbuf});
                last;
            }
            $pos += $size + 2;
            return if length($u->{rbuf}) < $pos;
        }
    } else {
        $end = $r->{hlen} + $r->{len};
        return if length($u->{rbuf}) < $end;
    }
    $client->respond($u, $r, substr($u->{rbuf}, 0, $end, ''));
}

# Relays a complete origin answer to the client with the client's own
# connection handling, then goes on with the client's next request.
sub respond ($c, $u, $r, $bytes) {
    my $req = delete $c->{req};
    $u->{for_request} = 0;
    $u->{resp} = undef;
    my $reuse = !$r->{close} && $r->{len} ne 'eof' && !$u->{eof}
        && $u->{rbuf} eq '';
    if (!$reuse && !$u->{closed}) {
        $u->close;
    }
    delete $c->{up} if $c->{up} && $c->{up}{closed};

    my ($head, $body) = (substr($bytes, 0, $r->{hlen}),
                         substr($bytes, $r->{hlen}));
    my @lines = grep { $_ ne '' } split /\r?\n/, $head;
    my $status_line = shift @lines;
    @lines = grep { !/\A(?:connection|keep-alive|proxy-connection)[ \t]*:/i }
             @lines;
    push @lines, 'Content-Length: ' . length($body) if $r->{len} eq 'eof';
    my $keep = $req && $req->{keep_alive};
    if (!$keep) {
        push @lines, 'Connection: close';
    } elsif ($req->{version} eq 'HTTP/1.0') {
        push @lines, 'Connection: keep-alive';
    }
    $c->{wbuf} .= join("\r\n", $status_line, @lines) . "\r\n\r\n" . $body;
    debug(sprintf 'proxy %s %s -> %d', $req ? $req->{method} : '-',
          $req ? $req->{target} : '-', $r->{status});
    $c->{busy} = 0;
    $c->{close_after} = 1 unless $keep;
    $c->flush;
    $c->client_input unless $c->{closed} || $c->{close_after};
}

1;
