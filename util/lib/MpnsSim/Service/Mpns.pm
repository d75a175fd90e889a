package MpnsSim::Service::Mpns;

# The Microsoft Push Notification Service on top of the simulator's server:
# any path is a channel URI.  A POST to it is validated the way MPNS did
# (method, X-MessageID, X-WindowsPhone-Target, X-NotificationClass, body
# size, toast and tile XML checked with libxml2 against each template's
# vocabulary) and answered with the MPNS status headers; the channel's
# "state", named by its last path segment or scripted per path, picks the
# answer.  POST <channel>/callback on TLS is a callback registration.
# docs/protocol.md is the protocol this follows; mpns-simulator --help
# lists the states and checks.
#
# Needs XML::LibXML (Debian libxml-libxml-perl).

use v5.36;

use parent 'MpnsSim::Service';

use Encode ();
use JSON::PP ();
use XML::LibXML;

use constant {
    CALLBACK_MAX => 1024,               # largest callback message, bytes
    ZERO_UUID    => '00000000-0000-0000-0000-000000000000',
    WP_NS        => 'WPNotification',
};

my $HEX     = '[0-9a-fA-F]';
my $UUID_RE = qr/\A$HEX{8}-$HEX{4}-$HEX{4}-$HEX{4}-$HEX{12}\z/;

# Allowed X-NotificationClass values per X-WindowsPhone-Target ('' = raw).
my %CLASSES = (
    toast => { map { $_ => 1 } qw(2 12 22) },
    token => { map { $_ => 1 } qw(1 11 21) },
    ''    => { map { $_ => 1 } qw(3 13 23) },
);

# Toast children (each at most once).
my %TOAST_CHILDREN = map { $_ => 1 } qw(Text1 Text2 Sound Param);

# Tile children per template ('' = legacy WP7 tile), each at most once.
my %TILE_CHILDREN = (
    '' => [qw(BackgroundImage Count Title BackBackgroundImage BackTitle
              BackContent)],
    FlipTile => [qw(SmallBackgroundImage WideBackgroundImage
                    WideBackBackgroundImage WideBackContent BackgroundImage
                    Count Title BackBackgroundImage BackTitle BackContent)],
    CycleTile => [qw(SmallBackgroundImage), (map { "CycleImage$_" } 1 .. 9),
                  qw(Count Title)],
    IconicTile => [qw(SmallIconImage IconImage WideContent1 WideContent2
                      WideContent3 Count Title BackgroundColor)],
);

# Channel states with a fixed answer:
# [HTTP status, X-NotificationStatus, X-SubscriptionStatus,
#  X-DeviceConnectionStatus]; undef = header not sent.
my %STATE_ANSWER = (
    active           => [200, 'Received',   'Active',  'Connected'],
    tempdisconnected => [200, 'Received',   'Active',  'TempDisconnected'],
    disconnected     => [200, 'Received',   'Active',  'Disconnected'],
    queuefull        => [200, 'QueueFull',  'Active',  'Connected'],
    suppressed       => [200, 'Suppressed', 'Active',  'Connected'],
    dropped          => [200, 'Dropped',    'Active',  'Connected'],
    expired          => [404, 'Dropped',    'Expired', 'Connected'],
    inactive         => [412, 'Dropped',    undef,     'Inactive'],
    throttled_over   => [406, 'Dropped',    'Active',  'Connected'],
);

# States answered with a bare status code (no MPNS headers, no X-MessageID).
my %STATE_PLAIN = (busy => 503, unauthorized => 401, forbidden => 403);

# Every state name without a numeric suffix; throttled<N> and slow<MS> take
# one.  Longest first so that names sharing a prefix match correctly.
my @FIXED_STATES = sort { length($b) <=> length($a) || $a cmp $b }
    (grep { $_ ne 'throttled_over' } keys %STATE_ANSWER),
    keys %STATE_PLAIN, qw(silent reset garbage close stale unpinned);
my $STATE_ALT = join '|', @FIXED_STATES,
    'throttled[0-9]{1,9}', 'slow[0-9]{1,9}';
my $STATE_PREFIX_RE = qr/\A($STATE_ALT)(?=\z|[-_])/;
my $STATE_NAME_RE   = qr/\A(?:$STATE_ALT)\z/;

# The MPNS status headers, in the order the real service sent them.
my @STATUS_HEADERS = qw(X-DeviceConnectionStatus X-NotificationStatus
                        X-SubscriptionStatus);

# new(max_size => largest accepted notification body, bytes)
sub new ($class, %o) {
    return bless { max_size => $o{max_size} // 1024,
                   throttle => {} },    # path => notifications while throttled
        $class;
}

sub reset ($self) { $self->{throttle} = {} }

sub record_fields ($self) { return ([callback => JSON::PP::false]) }

sub knows_state ($self, $name) { return $name =~ $STATE_NAME_RE }

# A channel request: validated like MPNS, then answered per state.  A POST
# to <channel>/callback is a callback registration instead.
sub handle ($self, $ex) {
    if ($ex->method eq 'POST' && $ex->path =~ m{/callback\z}) {
        $self->callback($ex);
        return;
    }
    my ($fail, $why) = $self->validate($ex);
    if ($fail) {
        $ex->debug("rejected: $why");
        $ex->answer($fail, $fail == 405 ? [['Allow', 'POST']] : []);
        return;
    }
    my ($msgid) = $ex->header('X-MessageID');
    $self->perform($ex, $self->next_action($ex, $ex->path),
                   $msgid // ZERO_UUID);
}

# Callback registration: only on an authenticated (TLS) connection,
# exactly one X-CallbackURI, message at most 1 KB.  The answer carries
# X-SubscriptionStatus and X-DeviceConnectionStatus of the channel's state,
# named by the segment before "/callback".
sub callback ($self, $ex) {
    $ex->record(callback => JSON::PP::true);
    my @uri = $ex->header('X-CallbackURI');
    my $why = !$ex->tls ? 'callback registration needs an authenticated '
                          . '(TLS) connection'
            : @uri != 1 || $uri[0] eq '' ? 'exactly one X-CallbackURI needed'
            : length($ex->body) > CALLBACK_MAX ? 'callback message over 1 KB'
            : undef;
    if (defined $why) {
        $ex->debug("callback rejected: $why");
        $ex->answer($ex->tls ? 400 : 403);
        return;
    }
    my $channel = $ex->path =~ s{/callback\z}{}r;
    $self->perform($ex, $self->next_action($ex, $channel), undef);
}

# Picks the answer for a validated request: the path's script if any, else
# the state named by the last segment of $state_path.
sub next_action ($self, $ex, $state_path) {
    if (my $scripted = $ex->script) {
        return $scripted;
    }
    my ($last) = $state_path =~ m{([^/]*)\z};
    return { state => ($last =~ $STATE_PREFIX_RE ? $1 : 'active') };
}

# Carries out a state or a scripted custom answer.
sub perform ($self, $ex, $action, $msgid) {
    if (!defined $action->{state}) {
        perform_custom($ex, $action, $msgid);
        return;
    }
    my $state = $action->{state};
    $ex->debug('state ' . $state . ' for ' . $ex->path);
    if ($state eq 'silent') {
        $ex->hang;
    } elsif ($state eq 'reset') {
        $ex->send_broken("HTTP/1.1 200 OK\r\nX-Notificat");
    } elsif ($state eq 'garbage') {
        $ex->send_broken("SPAM 12 nonsense\r\n\r\n");
    } elsif (my $plain = $STATE_PLAIN{$state}) {
        $ex->answer($plain);
    } elsif ($state =~ /\Aslow([0-9]+)\z/) {
        my $ms = $1;
        $ex->later($ms, sub { answer_state($ex, 'active', $msgid) });
    } elsif ($state =~ /\Athrottled([0-9]+)\z/) {
        my $n = $1;
        my $count = ++$self->{throttle}{ $ex->path };
        answer_state($ex, $count <= $n ? 'active' : 'throttled_over', $msgid);
    } elsif ($state eq 'close') {
        answer_state($ex, 'active', $msgid, close => 1);
    } elsif ($state eq 'unpinned') {
        # the app runs, its tile is not on the start screen: MPNS
        # suppresses tiles, toasts and raw notifications get through
        my ($target) = $ex->header('X-WindowsPhone-Target');
        answer_state($ex, ($target // '') eq 'token' ? 'suppressed' : 'active',
                     $msgid);
    } elsif ($state eq 'stale') {
        # A reused connection "dropped by the server": the request was read,
        # earlier answers still go out, then FIN without a byte of answer.
        if ($ex->nth_on_connection == 1) {
            answer_state($ex, 'active', $msgid);
        } else {
            $ex->debug('stale: closing without an answer');
            $ex->send_broken('');
        }
    } else {
        answer_state($ex, $state, $msgid);
    }
}

# MPNS status headers in the order the real service sent them, then the
# X-MessageID echo.
sub status_headers ($notification, $subscription, $device, $msgid) {
    my @h;
    push @h, ['X-DeviceConnectionStatus', $device]    if defined $device;
    push @h, ['X-NotificationStatus', $notification]  if defined $notification;
    push @h, ['X-SubscriptionStatus', $subscription]  if defined $subscription;
    push @h, ['X-MessageID', $msgid]                  if defined $msgid;
    return \@h;
}

# Sends the fixed answer of a state from %STATE_ANSWER (a callback
# registration gets no X-NotificationStatus and no X-MessageID).
sub answer_state ($ex, $state, $msgid, %o) {
    my ($status, @values) = @{ $STATE_ANSWER{$state} };
    $values[0] = undef if $ex->record('callback');
    $ex->answer($status, status_headers(@values, $msgid), %o);
}

# Scripted {"status", "headers", "delay_ms"} answer: the MPNS status
# headers given come first, in MPNS order, and bring the X-MessageID echo.
sub perform_custom ($ex, $action, $msgid) {
    my %given = %{ $action->{headers} // {} };
    my %lc = map { lc($_) => $_ } keys %given;
    my @h;
    for my $name (@STATUS_HEADERS) {
        my $key = delete $lc{ lc $name } // next;
        push @h, [$key, delete $given{$key}];
    }
    my $has_mpns = @h > 0;
    my $close = 0;
    if (defined(my $key = delete $lc{connection})) {
        $close = lc(delete $given{$key}) eq 'close';
    }
    push @h, map { [$_, $given{$_}] } sort keys %given;
    push @h, ['X-MessageID', $msgid]
        if $has_mpns && defined $msgid && !exists $lc{'x-messageid'};
    my $send = sub { $ex->answer($action->{status}, \@h, close => $close) };
    if ($action->{delay_ms}) {
        $ex->later($action->{delay_ms}, $send);
    } else {
        $send->();
    }
}

# Checks a request the way MPNS did; returns () when valid, else
# (400 or 405, reason for --verbose).
sub validate ($self, $ex) {
    return (405, 'method is not POST') if $ex->method ne 'POST';

    my @ids = $ex->header('X-MessageID');
    return (400, 'more than one X-MessageID') if @ids > 1;
    return (400, 'X-MessageID is not a UUID') if @ids && $ids[0] !~ $UUID_RE;

    my @targets = $ex->header('X-WindowsPhone-Target');
    return (400, 'more than one X-WindowsPhone-Target') if @targets > 1;
    my $target = $targets[0] // '';
    return (400, "bad X-WindowsPhone-Target '$target'")
        if @targets && $target ne 'toast' && $target ne 'token';

    my @classes = $ex->header('X-NotificationClass');
    return (400, 'more than one X-NotificationClass') if @classes > 1;
    return (400, "X-NotificationClass '$classes[0]' does not fit the target")
        if @classes && !$CLASSES{$target}{ $classes[0] };

    return (400, "body larger than $self->{max_size} bytes")
        if length($ex->body) > $self->{max_size};

    return () if $target eq '';              # raw: no body checks

    my @types = $ex->header('Content-Type');
    return (400, 'Content-Type must be text/xml')
        unless @types == 1 && $types[0] =~ m{\Atext/xml[ \t]*(?:;(.*))?\z}is;
    my $params = $1 // '';
    if ($params =~ /(?:\A|;)[ \t]*charset[ \t]*=[ \t]*"?([^";]*)"?/i) {
        return (400, 'charset must be utf-8') if lc($1) ne 'utf-8';
    }
    my $err = validate_xml($ex->body, $target);
    return (400, $err) if defined $err;
    return ();
}

# Validates a toast or tile payload; returns undef when valid, else why not.
sub validate_xml ($body, $target) {
    return 'body contains NUL bytes' if $body =~ /\x00/;
    my $copy = $body;
    return 'body is not UTF-8'
        unless eval { Encode::decode('UTF-8', $copy, Encode::FB_CROAK); 1 };
    if ($body =~ /\A(?:\xEF\xBB\xBF)?<\?xml[^>]*?
                   \sencoding\s*=\s*["']([^"']*)["']/x) {
        return "XML declares encoding '$1'" if lc($1) ne 'utf-8';
    }
    my $parser = XML::LibXML->new(no_network => 1, expand_entities => 0,
                                  load_ext_dtd => 0);
    my $doc = eval { $parser->parse_string($body) };
    return 'XML is not well-formed' unless $doc;
    return 'XML has a DTD' if $doc->internalSubset || $doc->externalSubset;
    for my $node ($doc->childNodes) {
        return 'something besides the root element at top level'
            unless $node->nodeType == XML_ELEMENT_NODE;
    }

    my $root = $doc->documentElement;
    return 'root is not wp:Notification'
        unless ($root->namespaceURI // '') eq WP_NS
            && $root->localname eq 'Notification';
    my ($attrs, $aerr) = attributes_of($root);
    return $aerr if $aerr;
    my $version = delete $attrs->{Version};
    return "root attribute '" . (sort keys %$attrs)[0] . "' not allowed"
        if %$attrs;
    return "Version must be 2.0" if defined $version && $version ne '2.0';

    my ($kids, $kerr) = element_children($root);
    return $kerr if $kerr;
    my $want = $target eq 'toast' ? 'Toast' : 'Tile';
    return "root must hold exactly one wp:$want"
        unless @$kids == 1 && $kids->[0]->localname eq $want;
    return $target eq 'toast'
        ? validate_toast($kids->[0])
        : validate_tile($kids->[0], $version);
}

# wp:Toast: no attributes; Text1, Text2, Sound, Param at most once each.
sub validate_toast ($toast) {
    my ($attrs, $aerr) = attributes_of($toast);
    return $aerr if $aerr;
    return 'wp:Toast takes no attributes' if %$attrs;
    my ($kids, $kerr) = element_children($toast);
    return $kerr if $kerr;
    my %seen;
    for my $el (@$kids) {
        my $name = $el->localname;
        return "wp:$name not allowed in a toast" unless $TOAST_CHILDREN{$name};
        return "wp:$name given twice" if $seen{$name}++;
        my ($attrs, $err) = attributes_of($el);
        return $err if $err;
        $err = leaf_error($el);
        return $err if $err;
        if ($name eq 'Sound' && exists $attrs->{Silent}) {
            my $silent = delete $attrs->{Silent};
            return 'Silent must be "true"' if $silent ne 'true';
            return 'a silent wp:Sound must be empty' if $el->hasChildNodes;
        }
        return "attribute on wp:$name not allowed" if %$attrs;
    }
    return undef;
}

# wp:Tile: Id/Template attributes; the template decides allowed children.
sub validate_tile ($tile, $version) {
    my ($attrs, $aerr) = attributes_of($tile);
    return $aerr if $aerr;
    my $template = delete $attrs->{Template};
    delete $attrs->{Id};
    return "wp:Tile attribute '" . (sort keys %$attrs)[0] . "' not allowed"
        if %$attrs;
    if (defined $template) {
        return "unknown Template '$template'"
            unless $template ne '' && $TILE_CHILDREN{$template};
        return 'a tile Template needs Version="2.0" on wp:Notification'
            unless defined $version;
    }
    my %allowed = map { $_ => 1 } @{ $TILE_CHILDREN{ $template // '' } };
    my ($kids, $kerr) = element_children($tile);
    return $kerr if $kerr;
    my %seen;
    for my $el (@$kids) {
        my $name = $el->localname;
        return "wp:$name not allowed in this tile" unless $allowed{$name};
        return "wp:$name given twice" if $seen{$name}++;
        my ($el_attrs, $err) = attributes_of($el);
        return $err if $err;
        $err = leaf_error($el);
        return $err if $err;
        my $action = delete $el_attrs->{Action};
        return "attribute on wp:$name not allowed" if %$el_attrs;
        if (defined $action) {
            return 'Action must be "Clear"' if $action ne 'Clear';
            return "wp:$name with Action=\"Clear\" must be empty"
                if $el->hasChildNodes;
        } elsif ($name eq 'Count') {
            return 'Count must be an integer 0..99'
                unless $el->textContent =~ /\A(?:0|[1-9][0-9]?)\z/;
        }
    }
    return undef;
}

# Plain (un-namespaced) attributes of an element as name => value.  Namespace
# declarations are allowed only for the WPNotification namespace.
sub attributes_of ($el) {
    my %attrs;
    for my $attr ($el->attributes) {
        if ($attr->nodeType == XML_NAMESPACE_DECL) {
            return (undef, 'foreign namespace declaration')
                if ($attr->declaredURI // '') ne WP_NS;
            next;
        }
        return (undef, "namespaced attribute '" . $attr->nodeName . "'")
            if ($attr->namespaceURI // '') ne '';
        $attrs{ $attr->nodeName } = $attr->value;
    }
    return (\%attrs, undef);
}

# Element children of a container element: all in the wp namespace, with
# only whitespace text between them.
sub element_children ($el) {
    my @kids;
    for my $n ($el->childNodes) {
        my $t = $n->nodeType;
        if ($t == XML_ELEMENT_NODE) {
            return (undef, "element '" . $n->nodeName
                           . "' not in the wp namespace")
                unless ($n->namespaceURI // '') eq WP_NS;
            push @kids, $n;
        } elsif ($t == XML_TEXT_NODE && $n->data =~ /\A[ \t\r\n]*\z/) {
            next;
        } else {
            return (undef, 'text, comment or other node between elements in wp:'
                           . $el->localname);
        }
    }
    return (\@kids, undef);
}

# A property element holds text only.
sub leaf_error ($el) {
    for my $n ($el->childNodes) {
        my $t = $n->nodeType;
        next if $t == XML_TEXT_NODE || $t == XML_CDATA_SECTION_NODE;
        return 'wp:' . $el->localname . ' may hold text only';
    }
    return undef;
}

1;
