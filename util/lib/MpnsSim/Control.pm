package MpnsSim::Control;

# The control endpoint under /_sim/ (JSON, keep-alive): the recorded
# requests, statistics of the server and of every part registered with it,
# reset, and scripted answers per path.

use v5.36;

use Encode ();
use JSON::PP ();
use MIME::Base64 qw(encode_base64);

use MpnsSim::Http qw($TOKEN_RE);
use MpnsSim::Log qw(debug);

my $JSON = JSON::PP->new->utf8->canonical->allow_nonref;

my %ENDPOINT = (
    '/_sim/requests' => ['GET',  \&requests],
    '/_sim/stats'    => ['GET',  \&stats],
    '/_sim/reset'    => ['POST', \&reset],
    '/_sim/script'   => ['POST', \&script],
);

sub new ($class, $server) {
    return bless { server => $server }, $class;
}

# Dispatches /_sim/... to its handler after checking the method.
sub handle ($self, $c, $req) {
    my $entry = $ENDPOINT{ $req->{path} };
    if (!$entry) {
        send_json($c, $req, 404, { ok => JSON::PP::false,
                                   error => 'unknown control endpoint' });
        return;
    }
    my ($method, $handler) = @$entry;
    if ($req->{method} ne $method) {
        send_json($c, $req, 405, { ok => JSON::PP::false,
                                   error => "use $method" },
                  [['Allow', $method]]);
        return;
    }
    $handler->($self, $c, $req);
}

# $data is a structure to encode, or JSON text already assembled.
sub send_json ($c, $req, $status, $data, $headers = []) {
    my $body = ref $data ? $JSON->encode($data) : $data;
    $c->answer($req, undef, $status, $headers,
               body => "$body\n", type => 'application/json');
}

# Turns received bytes into a string for JSON output: UTF-8 when valid,
# otherwise one character per byte, so nothing is ever lost or croaks.
sub text_of ($bytes) {
    my $copy = $bytes;
    my $s = eval { Encode::decode('UTF-8', $copy, Encode::FB_CROAK) };
    return defined $s ? $s : "$bytes";
}

sub json_text ($bytes) {
    return defined $bytes ? $JSON->encode(text_of($bytes)) : 'null';
}

# One record as a JSON object with the documented key order: the server's
# fields, then the services'.
sub record_json ($self, $r) {
    return '{' . join(',',
        '"seq":' . sprintf('%d', $r->{seq}),
        '"time_ms":' . sprintf('%d', $r->{time} * 1000),
        '"conn":' . sprintf('%d', $r->{conn}),
        '"method":' . json_text($r->{method}),
        '"target":' . json_text($r->{target}),
        '"version":' . json_text($r->{version}),
        '"headers":' . $JSON->encode([
            map { [ text_of($_->[0]), text_of($_->[1]) ] } @{ $r->{headers} }
        ]),
        '"body_b64":' . $JSON->encode(encode_base64($r->{body}, '')),
        '"status":' . (defined $r->{status}
                       ? sprintf('%d', $r->{status}) : 'null'),
        '"tls":' . ($r->{tls} ? 'true' : 'false'),
        '"sni":' . json_text($r->{sni}),
        '"client_cn":' . json_text($r->{client_cn}),
        '"resumed":' . ($r->{resumed} ? 'true' : 'false'),
        map({ $JSON->encode($_) . ':' . $JSON->encode($r->{fields}{$_}) }
            $self->{server}->field_names),
    ) . '}';
}

# One record per line keeps the dump readable with plain curl.
sub requests ($self, $c, $req) {
    my @records = $self->{server}->records;
    my $body = @records
        ? "[\n" . join(",\n", map { $self->record_json($_) } @records) . "\n]"
        : '[]';
    send_json($c, $req, 200, $body);
}

sub stats ($self, $c, $req) {
    my $server = $self->{server};
    send_json($c, $req, 200, {
        map { %{ $_->stats } } $server, $server->counters, $server->services
    });
}

sub reset ($self, $c, $req) {
    my $server = $self->{server};
    $_->reset for $server, $server->counters, $server->services;
    debug('reset');
    send_json($c, $req, 200, { ok => JSON::PP::true });
}

# Installs or removes the scripted answers of one path.
sub script ($self, $c, $req) {
    my $err = $self->install_script($req->{body});
    if (defined $err) {
        send_json($c, $req, 400, { ok => JSON::PP::false, error => $err });
    } else {
        send_json($c, $req, 200, { ok => JSON::PP::true });
    }
}

# Validates and stores a script; returns an error text or undef.
sub install_script ($self, $body) {
    my $data = eval { JSON::PP->new->utf8->decode($body) };
    return 'body is not valid JSON' unless defined $data;
    return 'body must be a JSON object' unless ref $data eq 'HASH';
    my %d = %$data;
    my $path = delete $d{path};
    my $responses = delete $d{responses};
    return "unknown key '" . (sort keys %d)[0] . "'" if %d;
    return '"path" must be a string starting with /'
        unless defined $path && !ref $path && $path =~ m{\A/[^?#]*\z};
    return '"path" must not be under /_sim/' if $path =~ m{\A/_sim/};
    return '"responses" must be an array' unless ref $responses eq 'ARRAY';
    $path = Encode::encode('UTF-8', $path);

    my @list;
    for my $i (0 .. $#$responses) {
        my ($r, $err) = $self->check_response($responses->[$i]);
        return "responses[$i]: $err" if defined $err;
        push @list, $r;
    }
    $self->{server}->set_script($path, \@list);
    debug('script for ' . $path . ': ' . scalar(@list) . ' response(s)');
    return undef;
}

# Normalises one scripted response; returns ($response, undef) or
# (undef, error).  A state must be known to a service.
sub check_response ($self, $r) {
    return (undef, 'must be an object') unless ref $r eq 'HASH';
    my %r = %$r;
    if (exists $r{state}) {
        my $state = delete $r{state};
        return (undef, "unknown key '" . (sort keys %r)[0] . "'") if %r;
        return (undef, 'unknown state')
            unless defined $state && !ref $state
                && grep { $_->knows_state($state) }
                        $self->{server}->services;
        return ({ state => "$state" }, undef);
    }
    my $status = delete $r{status};
    my $headers = delete $r{headers} // {};
    my $delay = delete $r{delay_ms} // 0;
    return (undef, "unknown key '" . (sort keys %r)[0] . "'") if %r;
    return (undef, '"state" or "status" (200-599) required')
        unless defined $status && !ref $status && $status =~ /\A[0-9]{3}\z/
            && $status >= 200 && $status <= 599;
    return (undef, '"delay_ms" must be a non-negative integer')
        unless !ref $delay && $delay =~ /\A[0-9]{1,9}\z/;
    return (undef, '"headers" must be an object') unless ref $headers eq 'HASH';
    my %h;
    for my $name (sort keys %$headers) {
        my $v = $headers->{$name};
        return (undef, "bad header name '$name'")
            unless $name =~ /\A$TOKEN_RE\z/;
        return (undef, "header '$name' is set by the simulator")
            if $name =~ /\A(?:content-length|transfer-encoding|date|server)\z/i;
        return (undef, "header '$name' must be a string")
            if !defined $v || ref $v;
        $v = Encode::encode('UTF-8', "$v");
        return (undef, "header '$name' has a control character")
            if $v =~ /[\x00-\x08\x0a-\x1f\x7f]/;
        $h{$name} = $v;
    }
    return ({ status => $status + 0, headers => \%h, delay_ms => $delay + 0 },
            undef);
}

1;
