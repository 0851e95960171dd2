/*
 * imgfeat_text_fuzzer.c — libFuzzer harness for imgfeat's text input
 * (imgfeat_parse_text, what imgfeat_in runs). The input is the text, as
 * imgfeat_in receives it (a C string: bytes after a NUL are not seen).
 *
 * Invariants: no crash, no read or write outside the buffers (ASan, whose
 * buffers are exactly as large as documented), no UB; a rejected text has a
 * known status and a position inside it; an accepted one has 1..16000
 * elements, all finite (imgfeat_values_valid), and reads back bit for bit from
 * its output text (imgfeat_out's shortest decimal and "%.9g") and its binary
 * form.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *text = malloc(size + 1);
	size_t		text_len;
	int			cap;
	float	   *values;
	int			dim = -1;
	ImgfeatParseError err;
	ImgfeatStatus status;

	memcpy(text, data, size);
	text[size] = '\0';
	text_len = strlen(text);

	cap = imgfeat_text_dim_bound(text);
	FUZZ_CHECK(cap >= 1 && cap <= IMGFEAT_MAX_DIM);
	values = malloc(sizeof(float) * (size_t) cap);

	status = imgfeat_parse_text(text, values, cap, &dim, &err);
	FUZZ_CHECK(err.status == status);
	if (status == IMGFEAT_OK)
	{
		FUZZ_CHECK(dim >= 1 && dim <= IMGFEAT_MAX_DIM && dim <= cap);
		FUZZ_CHECK(imgfeat_values_valid(dim, values));
		fuzz_check_round_trips(dim, values);
	}
	else
	{
		FUZZ_CHECK(fuzz_text_status_ok(status));
		FUZZ_CHECK(dim == 0);
		FUZZ_CHECK(err.pos <= text_len);
		if (status == IMGFEAT_ERR_OUT_OF_RANGE)
			FUZZ_CHECK(err.len >= 1 && err.pos + err.len <= text_len);
		if (status == IMGFEAT_ERR_TOO_MANY_DIMS)
			FUZZ_CHECK(err.dim == IMGFEAT_MAX_DIM + 1);
		if (status == IMGFEAT_ERR_NAN || status == IMGFEAT_ERR_INF)
			FUZZ_CHECK(err.index >= 0 && err.index < cap);
	}
	free(values);
	free(text);
	return 0;
}
