# imgsearch_index_check detects corruption. Each case builds a fresh faissflat
# index, checks that it passes, stops the server, patches the index's file
# (as a disk fault or a bug would leave it), starts the server again and
# expects XX002 (index_corrupted) with a message naming the problem.
#
# Page layout (common/index_pages.h, common/vector_store.h, faissflat.h), all
# little-endian: a 24-byte page header, then the data; the special area is the
# last 8 bytes (kind u16, page id u16). Metapage (block 0): magic, version,
# then the store: dim, group_pages, first_block, nslots, free_head, nfree (u32
# each, from byte 24). A group is a slot page (680 headers of 12 bytes: TID
# as block hi u16, block lo u16, offset u16; state u16; squared norm f32 or
# next_free u32) and
# group_pages - 1 vector pages.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $BLCKSZ = 8192;
my $DATA = 24;
my $GROUP_SLOTS = 680;

my $node = PostgreSQL::Test::Cluster->new('corrupt');
$node->init;
$node->append_conf('postgresql.conf', 'autovacuum = off');
$node->start;
is($node->safe_psql('postgres', 'SHOW data_checksums'), 'off',
	'no checksums: the patched pages reach the check');

# 1500 rows of 8 dimensions: three groups of 4 pages (1 slot page, 3 vector
# pages). Room on each heap page for HOT updates.
$node->safe_psql('postgres', q{
	CREATE EXTENSION imgsearch;
	SELECT setseed(0.3);
	CREATE TABLE f (id int, v imgfeat(8), note text) WITH (fillfactor = 70);
	INSERT INTO f SELECT i, (SELECT array_agg(random()::real) FROM generate_series(1, 8) WHERE i > 0)::imgfeat
	FROM generate_series(1, 1500) i;
});

sub ctid
{
	my ($id) = @_;
	my $ctid = $node->safe_psql('postgres', "SELECT ctid FROM f WHERE id = $id");
	$ctid =~ /^\((\d+),(\d+)\)$/ or die "no row $id";
	return ($1, $2);
}

sub file_of
{
	my ($index) = @_;
	return $node->data_dir . '/' . $node->safe_psql('postgres', "SELECT pg_relation_filepath('$index')");
}

sub peek
{
	my ($file, $offset, $len) = @_;
	open(my $fh, '<:raw', $file) or die "$file: $!";
	seek($fh, $offset, 0) or die;
	read($fh, my $buf, $len) == $len or die 'short read';
	close $fh;
	return $buf;
}

sub poke
{
	my ($file, $offset, $bytes) = @_;
	open(my $fh, '+<:raw', $file) or die "$file: $!";
	seek($fh, $offset, 0) or die;
	print $fh $bytes;
	close $fh or die;
}

sub meta_u32
{
	my ($file, $field) = @_;    # 0 magic, 1 version, 2 dim, 3 group_pages, 4 first_block, 5 nslots, 6 free_head, 7 nfree
	return unpack('V', peek($file, $DATA + 4 * $field, 4));
}

sub set_meta_u32
{
	my ($file, $field, $value) = @_;
	poke($file, $DATA + 4 * $field, pack('V', $value));
}

# Byte offset of slot's header in the file.
sub slot_offset
{
	my ($file, $slot) = @_;
	my $group_pages = meta_u32($file, 3);
	my $block = meta_u32($file, 4) + int($slot / $GROUP_SLOTS) * $group_pages;
	return $block * $BLCKSZ + $DATA + 12 * ($slot % $GROUP_SLOTS);
}

sub read_slot
{
	my ($file, $slot) = @_;
	my ($hi, $lo, $off, $state, $u) = unpack('v v v v V', peek($file, slot_offset($file, $slot), 12));
	return { block => ($hi << 16) | $lo, offset => $off, state => $state, u => $u };
}

sub write_slot
{
	my ($file, $slot, $s) = @_;
	poke($file, slot_offset($file, $slot),
		pack('v v v v V', $s->{block} >> 16, $s->{block} & 0xffff, $s->{offset}, $s->{state}, $s->{u}));
}

sub slot_of_tid
{
	my ($file, $block, $offset) = @_;
	for my $slot (0 .. meta_u32($file, 5) - 1)
	{
		my $s = read_slot($file, $slot);
		return $slot if $s->{state} == 1 && $s->{block} == $block && $s->{offset} == $offset;
	}
	die "no slot for ($block,$offset)";
}

my $case = 0;

# Builds an index (unless given one), checks it, stops the server, lets
# $patch change its file, starts the server and expects XX002 matching $expect.
sub corrupt_case
{
	my ($name, $patch, $expect, $index) = @_;
	$case++;
	unless ($index)
	{
		$index = "c$case";
		$node->safe_psql('postgres', "CREATE INDEX $index ON f USING faissflat (v)");
	}
	my ($ret, $out, $err) = $node->psql('postgres', "SELECT entries > 0 FROM imgsearch_index_check('$index')");
	is("$ret:$out:$err", '0:t:', "$name: the index passes before");
	my $file = file_of($index);
	$node->stop;
	$patch->($file);
	$node->start;
	($ret, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\nSELECT imgsearch_index_check('$index')");
	like($err, qr/ERROR:  XX002: index "$index" .*$expect/, "$name: detected");
	$node->safe_psql('postgres', "DROP INDEX $index");
}

# Dead rows that VACUUM has not removed: their entries are allowed (a build
# leaves them out, so these indexes are built before the DELETE).
my @dead10 = ctid(10);
$node->safe_psql('postgres', q{
	CREATE INDEX c_end ON f USING faissflat (v);
	CREATE INDEX c_hot ON f USING faissflat (v);
	DELETE FROM f WHERE id IN (10, 20);
});
is($node->safe_psql('postgres', q{SELECT entries, heap_rows, dead_entries FROM imgsearch_index_check('c_end')}),
	'1500|1498|2', 'entries of deleted rows are allowed before VACUUM');

corrupt_case('metapage magic', sub {
	set_meta_u32($_[0], 0, 0xdeadbeef);
}, qr/is not a faissflat index/);

corrupt_case('vector page turned into a slot page', sub {
	poke($_[0], 2 * $BLCKSZ + $BLCKSZ - 8, pack('v', 2));
}, qr/unexpected page at block 2/);

corrupt_case('page header with a hole', sub {
	poke($_[0], 3 * $BLCKSZ + 12, pack('v', 40));    # pd_lower
}, qr/malformed page header at block 3/);

corrupt_case('one bit of a stored vector', sub {
	my $file = shift;
	my ($block, $offset) = (1 + 1, $DATA + 32 * 5 + 2);    # slot 5, first element
	my $byte = unpack('C', peek($file, $block * $BLCKSZ + $offset, 1));
	poke($file, $block * $BLCKSZ + $offset, pack('C', $byte ^ 0x01));
}, qr/stores a vector for row \(\d+,\d+\) of table "f" \(slot 5\) that differs from the table's at element 1/);

corrupt_case('a stored squared norm that is not its vector\'s', sub {
	my $file = shift;
	my $s = read_slot($file, 7);
	$s->{u} = unpack('V', pack('f<', 0.125));    # the vectors' elements are in [0, 1): no norm is 0.125 exactly
	write_slot($file, 7, $s);
}, qr/stores a squared norm 0.125 for slot 7 \(row \(\d+,\d+\)\) that is not its vector's/);

corrupt_case('an entry freed without VACUUM (free list intact)', sub {
	my $file = shift;
	my $s = read_slot($file, 7);
	write_slot($file, 7, { block => 0xffff_ffff, offset => 0, state => 2, u => 0xffff_ffff });
	set_meta_u32($file, 6, 7);
	set_meta_u32($file, 7, 1);
}, qr/has no entry for row \(\d+,\d+\) of table "f"/);

corrupt_case('two entries for one row', sub {
	my $file = shift;
	my $s = read_slot($file, 9);
	write_slot($file, 8, $s);
}, qr/has two entries for row \(\d+,\d+\) of table "f": slots 8 and 9/);

corrupt_case('an entry past the end of the table', sub {
	my $file = shift;
	my $slot = slot_of_tid($file, @dead10);
	my $s = read_slot($file, $slot);
	$s->{block} = 5000;
	write_slot($file, $slot, $s);
}, qr/has an entry \(slot \d+\) for row \(5000,\d+\), past the end of table "f"/, 'c_end');

corrupt_case('a slot in an unknown state', sub {
	my $file = shift;
	my $s = read_slot($file, 1000);
	$s->{state} = 7;
	write_slot($file, 1000, $s);
}, qr/has slot 1000 in unknown state 7/);

corrupt_case('a slot in use past the slot count', sub {
	set_meta_u32($_[0], 5, meta_u32($_[0], 5) - 1);
}, qr/has slot (\d+) in use \(state 1\) past its \1 slots/);

corrupt_case('free count without a free list', sub {
	set_meta_u32($_[0], 7, 1);
}, qr/has 1 free slots but its free list is empty/);

# An entry of a dead row that points at a heap-only tuple instead (a HOT
# update's new version): entries point at the first tuple of a chain.
$node->safe_psql('postgres', q{UPDATE f SET note = 'hot' WHERE id = 40});
my @hot = ctid(40);
corrupt_case('an entry pointing at a heap-only tuple', sub {
	my $file = shift;
	my $slot = slot_of_tid($file, @dead10);
	write_slot($file, $slot, { block => $hot[0], offset => $hot[1], state => 1, u => 0 });
}, qr/which is a heap-only tuple/, 'c_hot');

# An entry that VACUUM should have removed: the row's line pointer is unused.
# Built before the DELETE and VACUUM, then a freed slot is made live again with
# the vacuumed row's TID (and taken off the free list).
$node->safe_psql('postgres', 'CREATE INDEX c_vac ON f USING faissflat (v)');
my @gone = ctid(30);
$node->safe_psql('postgres', 'DELETE FROM f WHERE id = 30; VACUUM (INDEX_CLEANUP ON) f');
is($node->safe_psql('postgres', 'SELECT free_slots, dead_entries FROM imgsearch_index_check(\'c_vac\')'),
	'1|0', 'VACUUM freed the slot of the deleted row');
corrupt_case('an entry of a vacuumed row', sub {
	my $file = shift;
	my $head = meta_u32($file, 6);
	my $s = read_slot($file, $head);
	set_meta_u32($file, 6, $s->{u});
	set_meta_u32($file, 7, meta_u32($file, 7) - 1);
	write_slot($file, $head, { block => $gone[0], offset => $gone[1], state => 1, u => 0 });
}, qr/for row \($gone[0],$gone[1]\) of table "f", which is an unused line pointer/, 'c_vac');

$node->stop;
done_testing();
