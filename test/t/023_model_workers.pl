# The model workers (issue 25): with imgsearch in shared_preload_libraries
# and imgsearch.model_workers = 2, every vgg16_features call goes to a
# background worker that loaded the model at server start.
#  - 8 concurrent sessions: each gets, bit for bit, the feature a backend
#    running the model itself (imgsearch.model_in_backend) computes, and none
#    of them maps libtorch; the box and batch forms too;
#  - a fresh session's first call does not load the model (it is about as
#    fast as its second);
#  - imgsearch_model_workers(): 2 rows, counters, state, model, RSS; refused
#    to a role without pg_monitor;
#  - an image the model cannot decode: the error in-backend gives, from the
#    pool, and the same worker serves the next call; an image over
#    imgsearch.max_decode_memory is refused before it is shipped;
#  - statement_timeout and pg_cancel_backend end a wait in the queue at once;
#    the requests left behind are dropped by the workers;
#  - workers that exit on purpose (SIGTERM, pg_terminate_backend) leave the
#    other sessions alone and come back with new pids;
#  - a reload that changes imgsearch.model makes the workers load it;
#  - kill -9 of a busy worker: PostgreSQL restarts every session, and after
#    recovery the workers serve again and committed data is intact.
use strict;
use warnings;
use File::Copy qw(copy);
use IPC::Run;
use List::Util qw(sum max min);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $data = $ENV{IMGSEARCH_TEST_DATA} or plan skip_all => 'IMGSEARCH_TEST_DATA is not set (run test/check.sh)';
my $t_start = time;

my $model = "$data/vgg16_pool.pt";
my $node = PostgreSQL::Test::Cluster->new('model_workers');
$node->init;
$node->append_conf('postgresql.conf', qq{
lc_messages = 'C'
shared_preload_libraries = 'imgsearch'
imgsearch.model_workers = 2
imgsearch.threads = 1
imgsearch.model = '$model'
restart_after_crash = on
});
$node->start;

# --- helpers ----------------------------------------------------------------
my @cols = qw(worker pid state served failed dropped qi qb model load rss);

# imgsearch_model_workers() as a list of hashes, by worker number
sub workers
{
	my $out = $node->safe_psql('postgres', q{
		SELECT worker, coalesce(pid, 0), state, served, failed, dropped, queued_interactive,
		       queued_background, coalesce(model, ''), coalesce(load_seconds, 0), coalesce(rss_mb, 0)
		FROM imgsearch_model_workers() ORDER BY worker});
	my @rows;
	for my $line (split /\n/, $out)
	{
		my %w;
		@w{@cols} = split /\|/, $line;
		push @rows, \%w;
	}
	return \@rows;
}

sub total
{
	my ($ws, $key) = @_;
	return sum(map { $_->{$key} } @$ws) // 0;
}

# Both workers idle with the model loaded and nothing queued. A worker
# updates its counters before it turns idle, so they are final then.
sub wait_idle
{
	my ($path, $what) = @_;
	$path //= $model;
	ok( $node->poll_query_until('postgres', qq{
			SELECT count(*) = 2 FROM imgsearch_model_workers()
			WHERE state = 'idle' AND model = '$path' AND queued_interactive = 0 AND queued_background = 0}),
		"both workers idle with $path loaded" . ($what ? " ($what)" : ''));
	return workers();
}

# psql's stdout and stderr, with SQLSTATEs (VERBOSITY verbose); errors do not stop it
sub psql_verbose
{
	my ($sql, @extra) = @_;
	my ($stdout, $stderr);
	$node->psql('postgres', $sql, stdout => \$stdout, stderr => \$stderr, on_error_stop => 0,
		extra_params => [ '-v', 'VERBOSITY=verbose', @extra ]);
	return ($stdout, $stderr);
}

# A background session whose errors do not end it
sub session
{
	my $s = $node->background_psql('postgres', on_error_stop => 0);
	my $pid = $s->query_safe('SELECT pg_backend_pid()');
	return ($s, $pid);
}

# Starts a query in a background session without waiting for it.
sub start_query
{
	my ($s, $sql) = @_;
	$s->{stderr} = '';
	$s->query_until(qr/started\n/, "\\echo started\n$sql;\n");
}

# Waits for the query started in $s to end; its stdout and stderr.
sub finish_query
{
	my ($s) = @_;
	my $out = $s->query_until(qr/finished\n/, "\\echo finished\n");
	$out =~ s/\n?finished\n$//;
	return ($out, $s->{stderr});
}

# kill SIGNAL of a pid that is still a model worker
sub signal_worker
{
	my ($sig, $pid) = @_;
	my $cmdline = slurp_file("/proc/$pid/cmdline") if -e "/proc/$pid/cmdline";
	return 0 unless defined $cmdline && $cmdline =~ /imgsearch model worker/;
	return kill $sig, $pid;
}

sub hex_feature { return "encode(imgfeat_send($_[0]), 'hex')" }
my $maps = q{pg_read_file('/proc/self/maps') ~ 'libtorch|imgsearch_model'};

# --- setup --------------------------------------------------------------------
$node->safe_psql('postgres', qq{
	CREATE EXTENSION imgsearch;
	CREATE TABLE img AS SELECT name, pg_read_binary_file('$data/images/' || name) AS b
	FROM pg_ls_dir('$data/images') name;
	CREATE TABLE bad AS SELECT name, pg_read_binary_file('$data/bad/' || name) AS b
	FROM pg_ls_dir('$data/bad') name WHERE name NOT LIKE '%.pt';
	-- 7000x7000 baseline JPEG in 633 bytes: about a second of decoding in a worker
	CREATE TABLE big AS SELECT pg_read_binary_file('$data/bombs/jpeg_base.jpg') AS b;
	-- seconds one call takes, in this session
	CREATE FUNCTION time_call(img bytea) RETURNS float8 LANGUAGE plpgsql AS \$\$
	DECLARE
		t timestamptz := clock_timestamp();
		f imgfeat;
	BEGIN
		f := vgg16_features(img);
		RETURN extract(epoch FROM clock_timestamp() - t);
	END \$\$;
	-- SQLSTATE, message and detail of a call; 'ok' if it succeeds
	CREATE FUNCTION try_features(img bytea) RETURNS text LANGUAGE plpgsql AS \$\$
	DECLARE
		state text; message text; detail text;
	BEGIN
		PERFORM vgg16_features(img);
		RETURN 'ok';
	EXCEPTION WHEN OTHERS THEN
		GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
		RETURN state || ': ' || message || coalesce(' DETAIL: ' || nullif(detail, ''), '');
	END \$\$;
	CREATE ROLE plain LOGIN;
	GRANT SELECT ON img TO plain;
	CREATE ROLE monitor LOGIN IN ROLE pg_monitor;
});
my @names = split /\n/, $node->safe_psql('postgres', 'SELECT name FROM img ORDER BY name');
cmp_ok(scalar(@names), '>=', 10, scalar(@names) . ' fixture images');
my $w = wait_idle($model, 'after the server start');
my @start_pids = map { $_->{pid} } @$w;
cmp_ok($_->{load}, '>', 0, "worker $_->{worker} loaded the model in $_->{load} s") for @$w;

# --- a fresh session's first call loads no model ---------------------------------
# Three fresh sessions: each times its first call and then a second one on
# another image. A backend that loaded the model itself would add its load
# (about a second, several times an image's work) to the first.
my (@first, @second);
for my $i (0 .. 2)
{
	my ($n1, $n2) = @names[ 2 * $i, 2 * $i + 1 ];
	my $out = $node->safe_psql('postgres', qq{
		SELECT time_call((SELECT b FROM img WHERE name = '$n1')) || '|' ||
		       time_call((SELECT b FROM img WHERE name = '$n2')) || '|' || ($maps)::text});
	my ($t1, $t2, $mapped) = split /\|/, $out;
	push @first, $t1;
	push @second, $t2;
	is($mapped, 'false', "fresh session $i: libtorch not mapped after two calls");
}
my $in_backend_first = $node->safe_psql('postgres', qq{
	SET imgsearch.model_in_backend = on;
	SELECT time_call((SELECT b FROM img WHERE name = '$names[0]'))});
my $median = sub { my @s = sort { $a <=> $b } @_; $s[ $#s / 2 ] };
diag(sprintf('first call of a fresh session: %s s; its second call: %s s; first call in-backend '
	  . '(loads the model): %.3f s', join(', ', map { sprintf '%.3f', $_ } @first),
	join(', ', map { sprintf '%.3f', $_ } @second), $in_backend_first));
cmp_ok($median->(@first), '<', 3 * $median->(@second),
	'a fresh session\'s first call takes less than 3x its second (median of 3 sessions)');

# --- 8 concurrent sessions: the pool's features are the backend's, bit for bit --
my @eight = @names[ 0 .. 7 ];
$w = wait_idle();
my $before = $w;
my @runs;
for my $name (@eight)
{
	my %r = (name => $name, out => '', err => '');
	$r{h} = IPC::Run::start(
		[
			$node->installed_command('psql'), '-XAtq', '-v', 'ON_ERROR_STOP=1',
			'-d', $node->connstr('postgres'),
			'-c', 'SELECT ' . hex_feature('vgg16_features(b)') . " FROM img WHERE name = '$name'",
			'-c', "SELECT $maps, pg_backend_pid()"
		],
		'>', \$r{out}, '2>', \$r{err}, IPC::Run::timeout(180));
	push @runs, \%r;
}
my %pool;
my %backend_pids;
for my $r (@runs)
{
	$r->{h}->finish;
	my ($feat, $check) = split /\n/, $r->{out};
	my ($mapped, $pid) = split /\|/, $check // '';
	is($r->{err}, '', "session for $r->{name}: no error");
	is($mapped, 'f', "session for $r->{name}: libtorch not mapped after its call");
	$pool{ $r->{name} } = $feat;
	$backend_pids{$pid} = 1 if defined $pid;
}
is(scalar(keys %backend_pids), 8, '8 distinct backends');
$w = wait_idle($model, 'after the 8 sessions');
is(total($w, 'served') - total($before, 'served'), 8, 'the workers served the 8 calls');
for my $i (0, 1)
{
	cmp_ok($w->[$i]{served} - $before->[$i]{served}, '>', 0, "worker $i served some of the 8 concurrent calls");
}

# the same images, box and batch, in a backend that runs the model itself
my $in = "'" . join("', '", @eight) . "'";
my $box = "'{100,50,300,200}'";
my @six = @names[ 8 .. 13 ];
my $batch_sql = 'SELECT array_to_string(ARRAY(SELECT ' . hex_feature('f') . ' FROM unnest(fs) f), \',\') '
  . "FROM (SELECT vgg16_features(array_agg(b ORDER BY name)) AS fs FROM img WHERE name IN ('"
  . join("', '", @six) . "')) s";
$before = workers();
my $out = $node->safe_psql('postgres', qq{
	SET imgsearch.model_in_backend = on;
	SELECT name || '|' || } . hex_feature('vgg16_features(b)') . qq{ FROM img WHERE name IN ($in) ORDER BY name;
	SELECT } . hex_feature("vgg16_features(b, $box)") . qq{ FROM img WHERE name = 'rgb.jpg';
	$batch_sql;
	SELECT $maps;
});
my @lines = split /\n/, $out;
my $backend_mapped = pop @lines;
my $backend_batch = pop @lines;
my $backend_box = pop @lines;
my %backend = map { split /\|/ } @lines;
is($backend_mapped, 't', 'imgsearch.model_in_backend: the backend maps libtorch');
is(total(workers(), 'served'), total($before, 'served'), '... and sends nothing to the workers');
for my $name (@eight)
{
	ok(defined $pool{$name} && length($pool{$name}) > 2048 && $pool{$name} eq $backend{$name},
		"$name: the pool's feature equals the in-backend one bit for bit");
}
$out = $node->safe_psql('postgres', 'SELECT ' . hex_feature("vgg16_features(b, $box)")
	  . " FROM img WHERE name = 'rgb.jpg'; $batch_sql; SELECT $maps");
my ($pool_box, $pool_batch, $pool_mapped) = split /\n/, $out;
ok(length($pool_box) > 2048 && $pool_box eq $backend_box, 'box form: the pool\'s feature equals the in-backend one');
my @batch_feats = split /,/, $pool_batch;
is(scalar(@batch_feats), scalar(@six), 'batch form: a feature per image');
ok($pool_batch eq $backend_batch, 'batch form: the pool\'s features equal the in-backend ones');
is($pool_mapped, 'f', 'box and batch through the pool: libtorch not mapped');
$w = wait_idle($model, 'after box and batch');
is(total($w, 'served') - total($before, 'served'), 1 + scalar(@six), 'the workers served the box and batch calls');

# --- imgsearch_model_workers() ---------------------------------------------------
is(scalar(@$w), 2, 'imgsearch_model_workers(): 2 rows');
for my $r (@$w)
{
	is($r->{state}, 'idle', "worker $r->{worker}: idle");
	is($r->{model}, $model, "worker $r->{worker}: model is the path");
	cmp_ok($r->{rss}, '>', 50, "worker $r->{worker}: rss_mb $r->{rss} > 50 (the model is resident)");
	is($r->{pid}, $start_pids[ $r->{worker} ], "worker $r->{worker}: same pid as at the start");
}
my ($stdout, $stderr) = psql_verbose('SELECT count(*) FROM imgsearch_model_workers()', '-U', 'plain');
like($stderr, qr/ERROR:  42501: permission denied for function imgsearch_model_workers/,
	'a role without pg_monitor is refused (42501)');
($stdout, $stderr) = psql_verbose('SELECT count(*) FROM imgsearch_model_workers()', '-U', 'monitor');
is($stdout, '2', 'a member of pg_monitor sees the 2 workers');
($stdout, $stderr) = psql_verbose(
	'SELECT ' . hex_feature('vgg16_features(b)') . " FROM img WHERE name = '$eight[0]'", '-U', 'plain');
is($stdout, $pool{ $eight[0] }, 'a role without pg_monitor still gets features from the pool');

# --- an image the model cannot decode ----------------------------------------------
# One worker busy with a long request (7000x7000 JPEG); the bad image and the
# next call go to the other one. Repeated if the busy one took either.
my $backend_error = $node->safe_psql('postgres', q{
	SET imgsearch.model_in_backend = on;
	SELECT try_features(b) FROM bad WHERE name = 'truncated.jpg'});
like($backend_error, qr/^22P03: /, "in-backend: $backend_error");
my ($pool_error, $next, $same_worker);
for my $attempt (1 .. 3)
{
	$before = wait_idle($model, "bad image, attempt $attempt");
	my ($s) = session();
	start_query($s, 'SELECT vgg16_features(b) IS NOT NULL FROM big');
	$node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM imgsearch_model_workers() WHERE state = 'busy'})
	  or die 'no worker took the long request';
	my ($busy) = grep { $_->{state} eq 'busy' } @{ workers() };
	($pool_error, $next) = split /\n/, $node->safe_psql('postgres', qq{
		SELECT try_features(b) FROM bad WHERE name = 'truncated.jpg';
		SELECT try_features(b) FROM img WHERE name = '$names[9]'});
	my ($o) = finish_query($s);
	$s->quit;
	is($o, 't', 'the long request is answered');
	$w = wait_idle($model, "bad image, attempt $attempt");
	my $other = 1 - $busy->{worker};
	is(total($w, 'failed') - total($before, 'failed'), 1, 'the failed count went up by 1');
	$same_worker = $w->[$other]{failed} == $before->[$other]{failed} + 1 &&
	  $w->[$other]{served} == $before->[$other]{served} + 1;
	last if $same_worker;
	diag("attempt $attempt: the busy worker took one of the calls; again");
}
is($pool_error, $backend_error, "through the pool: the same error ($pool_error)");
is($next, 'ok', 'the next call works');
ok($same_worker, 'the worker that failed served the next call');

# --- an image over imgsearch.max_decode_memory ---------------------------------------
($stdout, $stderr) = psql_verbose(q{SET imgsearch.max_decode_memory = '512MB'}, '-U', 'plain');
like($stderr, qr/ERROR:  42501: permission denied to set parameter "imgsearch.max_decode_memory"/,
	'a non-superuser cannot raise imgsearch.max_decode_memory (42501)');
# a 1.1 MB image: a PNG followed by 1.1 MB of zeros (decoders stop at its end)
my $padded = q{(SELECT b || decode(repeat('00', 1100000), 'hex') FROM img WHERE name = 'small.png')};
$before = wait_idle();
($stdout, $stderr) = psql_verbose("SELECT vgg16_features($padded) IS NOT NULL");
is($stdout, 't', 'the 1.1 MB image is answered under the default imgsearch.max_decode_memory');
$w = wait_idle();
is(total($w, 'served') - total($before, 'served'), 1, '... by a worker');
$before = $w;
($stdout, $stderr) = psql_verbose("SET imgsearch.max_decode_memory = '1MB'; SELECT vgg16_features($padded)");
like($stderr, qr/ERROR:  54000: image of \d+ bytes is larger than imgsearch.max_decode_memory \(1024 kB\)/,
	'under imgsearch.max_decode_memory = 1MB it is refused (54000)');
$w = wait_idle();
is(join(',', map { "$_->{served}/$_->{failed}/$_->{dropped}" } @$w),
	join(',', map { "$_->{served}/$_->{failed}/$_->{dropped}" } @$before),
	'... before it is shipped: served, failed and dropped unchanged');

# --- statement_timeout and cancel while waiting in the queue --------------------------
# Four sessions run batches of three 7000x7000 JPEGs (about a second each): both
# workers busy, two requests queued. A call then waits behind them for at
# least one whole image.
$before = wait_idle();
my @batches;
for my $i (1 .. 4)
{
	my ($s) = session();
	start_query($s, 'SELECT array_length(vgg16_features(array_agg(b)), 1) FROM big, generate_series(1, 3)');
	push @batches, $s;
}
ok( $node->poll_query_until('postgres', q{
		SELECT count(*) = 2 AND min(queued_interactive) >= 2 FROM imgsearch_model_workers() WHERE state = 'busy'}),
	'both workers busy, two requests queued');
my $t0 = time;
($stdout, $stderr) = psql_verbose(qq{
	SET statement_timeout = '500ms';
	SELECT vgg16_features(b) IS NOT NULL FROM img WHERE name = '$names[10]'});
my $timeout_s = time - $t0;
like($stderr, qr/ERROR:  57014: canceling statement due to statement timeout/,
	'statement_timeout = 500ms while queued: 57014');
cmp_ok($timeout_s, '<', 3, sprintf('... %.2f s after the call (connection included)', $timeout_s));

my ($waiter, $waiter_pid) = session();
start_query($waiter, "SELECT vgg16_features(b) IS NOT NULL FROM img WHERE name = '$names[11]'");
# a backend whose request no worker took yet waits in shm_mq_receive for the
# sender to attach: IPC / MessageQueueInternal (MessageQueueReceive once taken)
ok( $node->poll_query_until('postgres', qq{
		SELECT wait_event = 'MessageQueueInternal' FROM pg_stat_activity WHERE pid = $waiter_pid}),
	'a session waits in the queue (wait event MessageQueueInternal)');
my $queued = $node->safe_psql('postgres', 'SELECT max(queued_interactive) FROM imgsearch_model_workers()');
$t0 = time;
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($waiter_pid)"), 't', 'pg_cancel_backend');
pump_until($waiter->{run}, IPC::Run::timeout(60), \$waiter->{stderr}, qr/canceling statement/);
my $cancel_s = time - $t0;
like($waiter->{stderr}, qr/canceling statement due to user request/, 'the waiting call is canceled');
cmp_ok($cancel_s, '<', 3, sprintf('... %.2f s after pg_cancel_backend (%d requests queued then)', $cancel_s, $queued));
is($waiter->query('SELECT pg_backend_pid()'), $waiter_pid, 'the canceled session goes on');
$waiter->quit;
for my $s (@batches)
{
	my ($o, $e) = finish_query($s);
	is($o, '3', 'a long batch is answered') or diag($e);
	$s->quit;
}
$w = wait_idle($model, 'after the long batches');
is(total($w, 'qi'), 0, 'the queue is empty');
is(total($w, 'dropped') - total($before, 'dropped'), 2,
	'the 2 requests whose callers left were dropped by the workers');
is(total($w, 'served') - total($before, 'served'), 12, '... and the 12 batch images served');
diag(sprintf('statement_timeout came %.2f s after the call, the cancel %.2f s after pg_cancel_backend',
	$timeout_s, $cancel_s));

# --- workers that exit on purpose ----------------------------------------------------
my ($bystander, $bystander_pid) = session();
$before = wait_idle();
my %old_pids = map { $_->{pid} => 1 } @$before;
my $log_offset = -s $node->logfile;
($stdout, $stderr) = psql_verbose(
	q{SELECT string_agg(pg_terminate_backend(pid)::text, ',' ORDER BY worker) FROM imgsearch_model_workers()});
is($stdout, 'true,true', 'pg_terminate_backend(pid) FROM imgsearch_model_workers() signals both workers');
$t0 = time;
ok( $node->poll_query_until('postgres', qq{
		SELECT count(*) = 2 FROM imgsearch_model_workers()
		WHERE state = 'idle' AND model = '$model' AND pid NOT IN (} . join(', ', keys %old_pids) . ')'),
	'both workers are back, with new pids');
my $back_s = time - $t0;
cmp_ok($back_s, '<', 30, sprintf('... within %.1f s', $back_s));
is($bystander->query('SELECT pg_backend_pid()'), $bystander_pid,
	'an open session is untouched: its next query works, same backend');
like($bystander->query("SELECT try_features(b) FROM img WHERE name = '$names[12]'"), qr/^ok$/,
	'... and its next call is served');
$bystander->quit;
is( $node->safe_psql('postgres', 'SELECT ' . hex_feature('vgg16_features(b)') . " FROM img WHERE name = '$eight[1]'"),
	$pool{ $eight[1] }, 'a new session\'s call gives the same feature');
my $log = slurp_file($node->logfile, $log_offset);
like($log, qr/terminating background worker "imgsearch model worker" due to administrator command/,
	'the workers exited on SIGTERM');
unlike($log, qr/terminated by signal|terminating any other active server processes/, 'no crash restart');

# --- a reload that changes imgsearch.model --------------------------------------------
my $copy = $node->basedir . '/model_copy.pt';
copy($model, $copy) or die "copy: $!";
chmod 0644, $copy;
$before = workers();
$node->safe_psql('postgres', "ALTER SYSTEM SET imgsearch.model = '$copy'");
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
$t0 = time;
wait_idle($copy, 'after ALTER SYSTEM SET imgsearch.model and pg_reload_conf');
diag(sprintf('the workers loaded the new path %.1f s after the reload', time - $t0));
$w = workers();
is(join(',', map { $_->{pid} } @$w), join(',', map { $_->{pid} } @$before), 'the same workers reloaded');
$out = $node->safe_psql('postgres', 'SELECT current_setting(\'imgsearch.model\'), '
	  . hex_feature('vgg16_features(b)') . ", $maps FROM img WHERE name = '$eight[2]'");
my ($setting, $feat, $mapped) = split /\|/, $out;
is($setting, $copy, 'a new session has the new imgsearch.model');
is($feat, $pool{ $eight[2] }, '... and its call gives the same feature (same weights)');
is($mapped, 'f', '... through the pool');

# --- kill -9 of a busy worker -----------------------------------------------------------
$node->safe_psql('postgres', 'CREATE TABLE kept AS SELECT i FROM generate_series(1, 1000) i');
my ($idle_session) = session();
my ($long) = session();
start_query($long, 'SELECT array_length(vgg16_features(array_agg(b)), 1) FROM '
	  . '(SELECT b FROM img ORDER BY name LIMIT 10) s, generate_series(1, 2)');
$node->poll_query_until('postgres', q{SELECT count(*) >= 1 FROM imgsearch_model_workers() WHERE state = 'busy'})
  or die 'no worker took the batch';
$w = workers();
my ($victim) = grep { $_->{state} eq 'busy' } @$w;
%old_pids = map { $_->{pid} => 1 } @$w;
$log_offset = -s $node->logfile;
ok(signal_worker('KILL', $victim->{pid}), "kill -9 busy worker $victim->{worker} (pid $victim->{pid})");
pump_until($long->{run}, IPC::Run::timeout(60), \$long->{stderr}, qr/connection|terminat/);
like($long->{stderr}, qr/server closed the connection|terminating connection because of crash|connection to server was lost/,
	'the session whose call ran loses its connection');
$t0 = time;
ok( $node->poll_query_until('postgres', qq{
		SELECT count(*) = 2 FROM imgsearch_model_workers()
		WHERE state = 'idle' AND model = '$copy' AND pid NOT IN (} . join(', ', keys %old_pids) . ')'),
	'after the crash restart both workers are back, with new pids');
diag(sprintf('workers back %.1f s after the kill', time - $t0 + 0));
my $survived = eval {
	my ($o, $e) = $idle_session->query('SELECT 1');
	$o eq '1' && !$e;
};
ok(!$survived, 'an idle session of before the crash was ended too (PostgreSQL restarts every session)');
is($node->safe_psql('postgres', 'SELECT count(*) || \'|\' || sum(i) FROM kept'), '1000|500500',
	'committed data is intact');
is( $node->safe_psql('postgres', 'SELECT ' . hex_feature('vgg16_features(b)') . " FROM img WHERE name = '$eight[3]'"),
	$pool{ $eight[3] }, 'calls work after the restart, same feature');
$log = slurp_file($node->logfile, $log_offset);
like($log, qr/imgsearch model worker.*was terminated by signal 9/, 'the log names the killed worker');
like($log, qr/all server processes terminated; reinitializing/, 'PostgreSQL reinitialized');
$w = wait_idle($copy, 'at the end');
is(total($w, 'served'), 1, 'the counters start over with the shared memory');
eval { $_->quit } for ($idle_session, $long);

$node->stop;
diag(sprintf('023_model_workers took %.0f s', time - $t_start));
done_testing();
