# imgsearch_index_check detects corruption. Each case builds a fresh faissflat
# index, checks that it passes, stops the server, patches the index's file
# (as a disk fault or a bug would leave it), starts the server again and
# expects XX002 (index_corrupted) with a message naming the problem. The
# store's cases use inner-product indexes (imgfeat_ip_ops: no codes, so the
# store and table checks see the damage first, as they would in any method);
# the codes' case patches an L2 index's code entry.
#
# Page layout (index/index_pages.h, index/index_meta.h, index/store_layout.h),
# all little-endian: a 24-byte page header, then the data; the special area is
# the last 8 bytes (kind u16, page id u16). Metapage (block 0): the shared
# header ImgsIndexMeta: magic, version, then the store (dim, group_pages,
# ngroups, nslots, free_head, nfree, ndirpages: u32 each, from byte 8 of the
# data; dir_pages[256] from byte 36; groups[512], the start block of each of
# the first 512 groups, from byte 1060), then the allocator's next_block
# (byte 3108) and the metric (u16, byte 3112). Group g >= 512 starts at entry
# (g - 512) % 2040 (u32) of directory page dir_pages[(g - 512) / 2040]. A
# group is a slot page (680 headers of 12 bytes: TID as block hi u16, block
# lo u16, offset u16; state u16; squared norm f32 or next_free u32) and
# group_pages - 1 vector pages. Groups are found through the directory, never
# computed: a method's pages may lie between them.
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

# Byte offsets of the metapage header's fields within the data.
my %META = (
	magic => 0, version => 4, dim => 8, group_pages => 12, ngroups => 16, nslots => 20,
	free_head => 24, nfree => 28, ndirpages => 32, dir_pages => 36, groups => 1060,
	next_block => 3108);
my $INLINE_GROUPS = 512;
my $DIR_ENTRIES = 2040;

sub meta_u32
{
	my ($file, $field, $i) = @_;
	return unpack('V', peek($file, $DATA + $META{$field} + 4 * ($i // 0), 4));
}

sub set_meta_u32
{
	my ($file, $field, $value, $i) = @_;
	poke($file, $DATA + $META{$field} + 4 * ($i // 0), pack('V', $value));
}

# Byte offset in the file of group g's directory entry.
sub dir_entry_offset
{
	my ($file, $g) = @_;
	return $DATA + $META{groups} + 4 * $g if $g < $INLINE_GROUPS;
	my $d = int(($g - $INLINE_GROUPS) / $DIR_ENTRIES);
	my $e = ($g - $INLINE_GROUPS) % $DIR_ENTRIES;
	return meta_u32($file, 'dir_pages', $d) * $BLCKSZ + $DATA + 4 * $e;
}

# The start block of group g, from the directory.
sub group_block
{
	my ($file, $g) = @_;
	return unpack('V', peek($file, dir_entry_offset($file, $g), 4));
}

sub set_group_block
{
	my ($file, $g, $blkno) = @_;
	poke($file, dir_entry_offset($file, $g), pack('V', $blkno));
}

# Byte offset of slot's header in the file.
sub slot_offset
{
	my ($file, $slot) = @_;
	my $block = group_block($file, int($slot / $GROUP_SLOTS));
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
	for my $slot (0 .. meta_u32($file, 'nslots') - 1)
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
		$node->safe_psql('postgres', "CREATE INDEX $index ON f USING faissflat (v imgfeat_ip_ops)");
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
	set_meta_u32($_[0], 'magic', 0xdeadbeef);
}, qr/is not a faissflat index/);

my $bad_block;
corrupt_case('vector page turned into a slot page', sub {
	$bad_block = group_block($_[0], 1) + 1;
	poke($_[0], $bad_block * $BLCKSZ + $BLCKSZ - 8, pack('v', 2));
}, qr/unexpected page at block (??{$bad_block})\b/);

corrupt_case('page header with a hole', sub {
	$bad_block = group_block($_[0], 0) + 2;
	poke($_[0], $bad_block * $BLCKSZ + 12, pack('v', 40));    # pd_lower
}, qr/malformed page header at block (??{$bad_block})\b/);

corrupt_case('one bit of a stored vector', sub {
	my $file = shift;
	my ($block, $offset) = (group_block($file, 0) + 1, $DATA + 32 * 5 + 2);    # slot 5, first element
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
	set_meta_u32($file, 'free_head', 7);
	set_meta_u32($file, 'nfree', 1);
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
	set_meta_u32($_[0], 'nslots', meta_u32($_[0], 'nslots') - 1);
}, qr/has slot (\d+) in use \(state 1\) past its \1 slots/);

corrupt_case('free count without a free list', sub {
	set_meta_u32($_[0], 'nfree', 1);
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
$node->safe_psql('postgres', 'CREATE INDEX c_vac ON f USING faissflat (v imgfeat_ip_ops)');
my @gone = ctid(30);
$node->safe_psql('postgres', 'DELETE FROM f WHERE id = 30; VACUUM (INDEX_CLEANUP ON) f');
is($node->safe_psql('postgres', 'SELECT free_slots, dead_entries FROM imgsearch_index_check(\'c_vac\')'),
	'1|0', 'VACUUM freed the slot of the deleted row');
corrupt_case('an entry of a vacuumed row', sub {
	my $file = shift;
	my $head = meta_u32($file, 'free_head');
	my $s = read_slot($file, $head);
	set_meta_u32($file, 'free_head', $s->{u});
	set_meta_u32($file, 'nfree', meta_u32($file, 'nfree') - 1);
	write_slot($file, $head, { block => $gone[0], offset => $gone[1], state => 1, u => 0 });
}, qr/for row \($gone[0],$gone[1]\) of table "f", which is an unused line pointer/, 'c_vac');

# faissflat's codes (faissflat.h): one code byte of an L2 index's newest
# code page changed. The metapage's FaissflatMeta follows the shared header
# (3120 bytes, MAXALIGNed) and names the code list's newest page at its
# byte 32; that page's entries (12 bytes of slot, residual norm and
# magnitude, then the code) follow a 16-byte list header.
$node->safe_psql('postgres', 'CREATE INDEX c_code ON f USING faissflat (v)');
corrupt_case('a code byte that is not its vector\'s', sub {
	my $file = shift;
	my $last = unpack('V', peek($file, $DATA + 3120 + 32, 4));
	my $at = $last * $BLCKSZ + $DATA + 16 + 12;
	poke($file, $at, pack('C', unpack('C', peek($file, $at, 1)) ^ 1));
}, qr/has a code entry for slot \d+ that is not the code of its vector/, 'c_code');

# The allocator and the directory (index_meta.h, store_layout.h): groups are found through
# the directory, allocated below next_block, in allocation order, never
# overlapping; pages a method allocated for itself (faissflat_test_reserve)
# lie between them and are neither taken for nor mistaken as store pages.
corrupt_case('a group past the allocator', sub {
	my $file = shift;
	set_meta_u32($file, 'next_block', group_block($file, 2) + 1);
}, qr/has group 2 at blocks \d+\.\.\d+, outside its allocated blocks 1\.\.\d+/);

corrupt_case('two groups overlapping', sub {
	my $file = shift;
	set_group_block($file, 1, group_block($file, 0) + 1);
}, qr/has group 0 \(blocks \d+\.\.\d+\) and group 1 \(from block \d+\) overlapping/);

corrupt_case('groups out of allocation order', sub {
	my $file = shift;
	my ($a, $b) = (group_block($file, 1), group_block($file, 2));
	set_group_block($file, 1, $b);
	set_group_block($file, 2, $a);
}, qr/has group 2 at block \d+, not after group 1 at block \d+/);

corrupt_case('more groups than the slots need', sub {
	my $file = shift;
	set_meta_u32($file, 'ngroups', meta_u32($file, 'ngroups') + 1);
}, qr/has 4 slot groups for \d+ slots/);

corrupt_case('a stale directory entry past the last group', sub {
	my $file = shift;
	set_group_block($file, 3, group_block($file, 2) + 4);
}, qr/has a start block \d+ for group 3 of its 3 groups/);

# Method pages: 4 reserved after the third group; the index passes with them
# (corrupt_case checks it first).
sub reserved_index
{
	my ($name) = @_;
	$node->safe_psql('postgres', "CREATE INDEX $name ON f USING faissflat (v)");
	return $node->safe_psql('postgres', "SELECT faissflat_test_reserve('$name', 4)");
}
my $reserved = reserved_index('c_method1');
corrupt_case('a directory entry naming a method page', sub {
	my $file = shift;
	set_group_block($file, 2, $reserved);
}, qr/unexpected page at block $reserved\b/, 'c_method1');

$reserved = reserved_index('c_method2');
corrupt_case('a method page turned into a slot page no group names', sub {
	my $file = shift;
	poke($file, ($reserved + 1) * $BLCKSZ + $BLCKSZ - 8, pack('v', 2));
}, qr/has a page of vector store kind 2 at block @{[$reserved + 1]}, which no group or directory entry names/,
	'c_method2');

$reserved = reserved_index('c_method3');
corrupt_case('written pages past the allocator', sub {
	my $file = shift;
	set_meta_u32($file, 'next_block', $reserved);
}, qr/has a page at block $reserved, past the $reserved blocks its allocator handed out/, 'c_method3');

# Past 512 groups the directory spills into directory pages (2-d vectors:
# groups of 2 pages; 512 * 680 + 1 rows need 513 groups and one directory page).
$node->safe_psql('postgres', q{
	CREATE TABLE d (id int, v imgfeat(2));
	INSERT INTO d SELECT i, ARRAY[sin(i), cos(i * 0.7)]::imgfeat FROM generate_series(1, 512 * 680 + 1) i;
	CREATE INDEX d_dir1 ON d USING faissflat (v);
	CREATE INDEX d_dir2 ON d USING faissflat (v);
});
is($node->safe_psql('postgres', q{SELECT entries || '/' || heap_rows FROM imgsearch_index_check('d_dir1')}),
	(512 * 680 + 1) . '/' . (512 * 680 + 1), 'an index with a directory page passes');
corrupt_case('a directory page entry overlapping the group before', sub {
	my $file = shift;
	set_group_block($file, 512, group_block($file, 511) + 1);
}, qr/has group 511 \(blocks \d+\.\.\d+\) and group 512 \(from block \d+\) overlapping/, 'd_dir1');
corrupt_case('a directory page of another kind', sub {
	my $file = shift;
	$bad_block = meta_u32($file, 'dir_pages', 0);
	poke($file, $bad_block * $BLCKSZ + $BLCKSZ - 8, pack('v', 3));
}, qr/unexpected page at block (??{$bad_block})\b/, 'd_dir2');

# A live slot that no code list entry names: the first entry of the newest
# code page made dead (IMGS_NO_SLOT), as vacuum's forget callback makes it.
# For a row the check's snapshot sees, that is corruption. For a deleted row
# it is what a crash between vacuum's forget callback and its freeing of the
# slots leaves (vector_store.h, slot reuse rule 1): harmless, and the check
# passes (t/019_lsh_crash once failed on that). A table of its own: the
# deleted row would change the counts checked above.
$node->safe_psql('postgres', q{
	CREATE TABLE g (id int, v imgfeat(8));
	INSERT INTO g SELECT i, (SELECT array_agg(random()::real) FROM generate_series(1, 8) WHERE i > 0)::imgfeat
	FROM generate_series(1, 300) i;
});
sub first_code_offset
{
	my $file = shift;
	return unpack('V', peek($file, $DATA + 3120 + 32, 4)) * $BLCKSZ + $DATA + 16;
}
sub forget_first_code
{
	my $file = shift;
	poke($file, first_code_offset($file), pack('V', 0xffffffff));
}
$node->safe_psql('postgres', 'CREATE INDEX g_unref ON g USING faissflat (v)');
corrupt_case('a live slot that no code list entry names, for a row the snapshot sees',
	\&forget_first_code, qr/has no code list entry for live slot \d+/, 'g_unref');
$node->safe_psql('postgres', 'CREATE INDEX g_forgot ON g USING faissflat (v); CHECKPOINT');
{
	my $file = file_of('g_forgot');
	my $s = read_slot($file, unpack('V', peek($file, first_code_offset($file), 4)));
	$node->safe_psql('postgres', "DELETE FROM g WHERE ctid = '($s->{block},$s->{offset})'");
	$node->stop;
	forget_first_code($file);
	$node->start;
	my ($ret, $out, $err) = $node->psql('postgres', "SELECT heap_rows FROM imgsearch_index_check('g_forgot')");
	is("$ret:$out:$err", '0:299:',
		'a deleted row\'s live slot that no code list entry names (a crash between vacuum\'s forget and free): the check passes');
}

$node->stop;
done_testing();
