/*
 * A minimal DER reader and writer for the CSR and TBSCertificate shapes.
 *
 * The reader accepts only what DER allows: one-byte tags, definite lengths
 * in the shortest form, no length beyond the enclosing element. It is fed
 * untrusted CSRs, so every step checks the remaining length first.
 */
#include "pki_int.h"

#include <stdlib.h>
#include <string.h>

bool
cf_pki__der_peek(const cf_pki__der_cur *cur, unsigned char tag)
{
	return cur->len > 0 && cur->p[0] == tag;
}

/* Read a length at p (avail bytes); *used gets its size. */
static bool
read_length(size_t *out, size_t *used, const unsigned char *p, size_t avail)
{
	size_t n, i, len = 0;

	if (avail < 1)
		return false;
	if (p[0] < 0x80) {
		*out = p[0];
		*used = 1;
		return true;
	}
	/* 0x80 is the indefinite form (BER only); more than 4 bytes is absurd here. */
	n = p[0] & 0x7f;
	if (n == 0 || n > 4 || avail < 1 + n)
		return false;
	if (p[1] == 0)
		return false; /* leading zero byte: not minimal */
	for (i = 0; i < n; i++)
		len = (len << 8) | p[1 + i];
	if (len < 0x80)
		return false; /* should have used the short form */
	*out = len;
	*used = 1 + n;
	return true;
}

bool
cf_pki__der_get(cf_pki__der_tlv *out, cf_pki__der_cur *cur, unsigned char tag)
{
	size_t len, used;

	if (cur->len < 2 || cur->p[0] != tag)
		return false;
	if (!read_length(&len, &used, cur->p + 1, cur->len - 1))
		return false;
	if (len > cur->len - 1 - used)
		return false;
	out->tlv = cur->p;
	out->tlv_len = 1 + used + len;
	out->val = cur->p + 1 + used;
	out->val_len = len;
	cur->p += out->tlv_len;
	cur->len -= out->tlv_len;
	return true;
}

bool
cf_pki__der_get_any(cf_pki__der_tlv *out, cf_pki__der_cur *cur)
{
	/* Tag number 31 announces the multi-byte form, which nothing read here uses. */
	if (cur->len < 1 || (cur->p[0] & 0x1f) == 0x1f)
		return false;
	return cf_pki__der_get(out, cur, cur->p[0]);
}

bool
cf_pki__der_oid_valid(const cf_pki__der_tlv *oid)
{
	size_t i;

	/* Each sub-identifier: no leading 0x80 byte; the last byte ends one (bit 8 clear). */
	if (oid->val_len == 0 || (oid->val[oid->val_len - 1] & 0x80) != 0)
		return false;
	for (i = 0; i < oid->val_len; i++) {
		if (oid->val[i] == 0x80 && (i == 0 || (oid->val[i - 1] & 0x80) == 0))
			return false;
	}
	return true;
}

static bool
der_valid(const cf_pki__der_tlv *tlv, int depth)
{
	unsigned char tag = tlv->tlv[0];
	cf_pki__der_cur in = { tlv->val, tlv->val_len };
	cf_pki__der_tlv child;

	if ((tag & 0x20) == 0) {
		switch (tag) {
		case 0x01: /* BOOLEAN */
			return tlv->val_len == 1 && (tlv->val[0] == 0x00 || tlv->val[0] == 0xff);
		case CF_DER_INTEGER:
			return tlv->val_len == 1 ||
			       (tlv->val_len > 1 &&
				!(tlv->val[0] == 0x00 && (tlv->val[1] & 0x80) == 0) &&
				!(tlv->val[0] == 0xff && (tlv->val[1] & 0x80) != 0));
		case CF_DER_NULL:
			return tlv->val_len == 0;
		case CF_DER_OID:
			return cf_pki__der_oid_valid(tlv);
		default:
			return true;
		}
	}
	/* Constructed: universal class only for SEQUENCE and SET (DER strings are primitive). */
	if ((tag & 0xc0) == 0 && tag != CF_DER_SEQUENCE && tag != CF_DER_SET)
		return false;
	if (depth >= CF_PKI__DER_DEPTH)
		return false;
	while (in.len > 0) {
		if (!cf_pki__der_get_any(&child, &in) || !der_valid(&child, depth + 1))
			return false;
	}
	return true;
}

bool
cf_pki__der_valid(const cf_pki__der_tlv *tlv)
{
	return der_valid(tlv, 1);
}

static bool
reserve(cf_pki__der_buf *buf, size_t more)
{
	unsigned char *np;
	size_t cap;

	if (buf->failed)
		return false;
	if (more <= buf->cap - buf->len)
		return true;
	cap = buf->cap == 0 ? 1024 : buf->cap;
	while (cap - buf->len < more)
		cap *= 2;
	np = realloc(buf->p, cap);
	if (np == NULL) {
		buf->failed = true;
		return false;
	}
	buf->p = np;
	buf->cap = cap;
	return true;
}

void
cf_pki__der_put(cf_pki__der_buf *buf, const void *data, size_t len)
{
	if (len == 0 || !reserve(buf, len))
		return;
	memcpy(buf->p + buf->len, data, len);
	buf->len += len;
}

/* Encode tag and length into hdr (6 bytes); returns the header size. */
static size_t
make_header(unsigned char hdr[6], unsigned char tag, size_t len)
{
	size_t n = 0, i;

	hdr[0] = tag;
	if (len < 0x80) {
		hdr[1] = (unsigned char)len;
		return 2;
	}
	for (i = len; i > 0; i >>= 8)
		n++;
	hdr[1] = (unsigned char)(0x80 | n);
	for (i = 0; i < n; i++)
		hdr[2 + i] = (unsigned char)(len >> (8 * (n - 1 - i)));
	return 2 + n;
}

void
cf_pki__der_put_tlv(cf_pki__der_buf *buf, unsigned char tag, const void *val, size_t len)
{
	unsigned char hdr[6];

	cf_pki__der_put(buf, hdr, make_header(hdr, tag, len));
	cf_pki__der_put(buf, val, len);
}

size_t
cf_pki__der_begin(const cf_pki__der_buf *buf)
{
	return buf->len;
}

void
cf_pki__der_end(cf_pki__der_buf *buf, size_t off, unsigned char tag)
{
	unsigned char hdr[6];
	size_t hlen;

	if (buf->failed || off > buf->len)
		return;
	hlen = make_header(hdr, tag, buf->len - off);
	if (!reserve(buf, hlen))
		return;
	/* The content is small (a certificate), so moving it is cheap. */
	memmove(buf->p + off + hlen, buf->p + off, buf->len - off);
	memcpy(buf->p + off, hdr, hlen);
	buf->len += hlen;
}

void
cf_pki__der_buf_clear(cf_pki__der_buf *buf)
{
	free(buf->p);
	buf->p = NULL;
	buf->len = 0;
	buf->cap = 0;
	buf->failed = false;
}
