/*
 * A small, strict, bounded JSON reader for flat messages, and a writer.
 *
 * How it works: one pass over the text with an explicit stack of open
 * containers (at most CF_AGENT_JSON_MAX_DEPTH), so hostile nesting costs a
 * bounded array and never the C stack. Only members of the top-level object
 * are matched against the wanted fields; everything else is validated and
 * skipped. Strings are checked for UTF-8, control characters and escapes
 * (surrogate pairs included); numbers follow RFC 8259's grammar.
 */
#include "agent_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct parser {
	const unsigned char *p;
	const unsigned char *end;
};

static void
skip_ws(struct parser *ps)
{
	while (ps->p < ps->end &&
	       (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static int
hex4(const unsigned char *s, unsigned int *out)
{
	unsigned int v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		unsigned char c = s[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned int)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned int)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned int)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static size_t
put_utf8(unsigned char *o, unsigned int cp)
{
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xc0 | (cp >> 6));
		o[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xe0 | (cp >> 12));
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (unsigned char)(0xf0 | (cp >> 18));
	o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Length of a valid UTF-8 sequence at s (at most avail bytes), or 0. */
static size_t
utf8_len(const unsigned char *s, size_t avail)
{
	unsigned int cp;
	size_t n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1fu;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0fu;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07u;
	} else {
		return 0;
	}
	if (avail < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3fu);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/*
 * Parse a string at ps->p (on the opening quote). With out set, the
 * decoded text is returned in a new buffer (the decoded form is never
 * longer than the source). A \u0000 is refused.
 */
static int
parse_string(struct parser *ps, char **out, size_t *len_out)
{
	const unsigned char *s = ps->p + 1;
	unsigned char *buf = NULL, *o = NULL;
	size_t n;

	if (out != NULL) {
		buf = malloc((size_t)(ps->end - ps->p) + 1);
		if (buf == NULL)
			return CF_AGENT_ENOMEM;
		o = buf;
	}
	for (;;) {
		if (s >= ps->end)
			goto bad;
		if (*s == '"')
			break;
		if (*s < 0x20)
			goto bad;
		if (*s == '\\') {
			unsigned int cp, lo;
			unsigned char c;

			if (ps->end - s < 2)
				goto bad;
			c = s[1];
			s += 2;
			switch (c) {
			case '"': cp = '"'; break;
			case '\\': cp = '\\'; break;
			case '/': cp = '/'; break;
			case 'b': cp = '\b'; break;
			case 'f': cp = '\f'; break;
			case 'n': cp = '\n'; break;
			case 'r': cp = '\r'; break;
			case 't': cp = '\t'; break;
			case 'u':
				if (ps->end - s < 4 || hex4(s, &cp) != 0)
					goto bad;
				s += 4;
				if (cp >= 0xdc00 && cp <= 0xdfff)
					goto bad;
				if (cp >= 0xd800 && cp <= 0xdbff) {
					if (ps->end - s < 6 || s[0] != '\\' || s[1] != 'u' ||
					    hex4(s + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
						goto bad;
					s += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				}
				if (cp == 0)
					goto bad;
				break;
			default:
				goto bad;
			}
			if (o != NULL)
				o += put_utf8(o, cp);
			continue;
		}
		n = utf8_len(s, (size_t)(ps->end - s));
		if (n == 0)
			goto bad;
		if (o != NULL) {
			memcpy(o, s, n);
			o += n;
		}
		s += n;
	}
	ps->p = s + 1;
	if (out != NULL) {
		*o = '\0';
		*len_out = (size_t)(o - buf);
		*out = (char *)buf;
	}
	return CF_AGENT_OK;
bad:
	free(buf);
	return CF_AGENT_EINVAL;
}

static int
parse_literal(struct parser *ps, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
		return CF_AGENT_EINVAL;
	ps->p += n;
	return CF_AGENT_OK;
}

static int
digits(struct parser *ps)
{
	const unsigned char *start = ps->p;

	while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
		ps->p++;
	return ps->p > start ? 0 : -1;
}

static int
parse_number(struct parser *ps)
{
	if (ps->p < ps->end && *ps->p == '-')
		ps->p++;
	if (ps->p >= ps->end)
		return CF_AGENT_EINVAL;
	if (*ps->p == '0')
		ps->p++;
	else if (digits(ps) != 0)
		return CF_AGENT_EINVAL;
	if (ps->p < ps->end && *ps->p == '.') {
		ps->p++;
		if (digits(ps) != 0)
			return CF_AGENT_EINVAL;
	}
	if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
		ps->p++;
		if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
			ps->p++;
		if (digits(ps) != 0)
			return CF_AGENT_EINVAL;
	}
	return CF_AGENT_OK;
}

static cf_agent__json_field *
find_field(cf_agent__json_field *fields, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(fields[i].name, name) == 0)
			return &fields[i];
	}
	return NULL;
}

void
cf_agent__json_fields_clear(cf_agent__json_field *fields, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(fields[i].str);
		fields[i].str = NULL;
		fields[i].len = 0;
		fields[i].present = false;
		fields[i].boolean = false;
	}
}

/* A scalar value at ps->p, stored into field when one is wanted here. */
static int
scalar(struct parser *ps, cf_agent__json_field *field, bool *seen)
{
	bool truth;
	int rc;

	if (field != NULL && *seen)
		return CF_AGENT_EINVAL; /* a wanted member given twice */
	*seen = field != NULL;
	switch (*ps->p) {
	case '"':
		if (field == NULL)
			return parse_string(ps, NULL, NULL);
		if (field->type != CF_AGENT__JSON_STR)
			return CF_AGENT_EINVAL;
		rc = parse_string(ps, &field->str, &field->len);
		field->present = rc == CF_AGENT_OK;
		return rc;
	case 't':
	case 'f':
		truth = *ps->p == 't';
		rc = parse_literal(ps, truth ? "true" : "false");
		if (rc != CF_AGENT_OK || field == NULL)
			return rc;
		if (field->type != CF_AGENT__JSON_BOOL)
			return CF_AGENT_EINVAL;
		field->present = true;
		field->boolean = truth;
		return CF_AGENT_OK;
	case 'n':
		return parse_literal(ps, "null"); /* a wanted member set to null is absent */
	default:
		if (field != NULL)
			return CF_AGENT_EINVAL;
		return parse_number(ps);
	}
}

int
cf_agent__json_read(const char *text, size_t len, cf_agent__json_field *fields, size_t n,
		    cf_agent_err *err)
{
	struct parser ps = { (const unsigned char *)text, (const unsigned char *)text + len };
	char stack[CF_AGENT_JSON_MAX_DEPTH];
	bool seen[32] = { false };
	int depth = 0, rc = CF_AGENT_EINVAL;
	bool first;
	char *key = NULL;
	size_t key_len;

	if (n > 31)
		return cf_agent__err_set(err, CF_AGENT_EINVAL, NULL, "too many fields");
	cf_agent__json_fields_clear(fields, n);
	skip_ws(&ps);
	if (ps.p >= ps.end || *ps.p != '{')
		goto bad;
	ps.p++;
	stack[depth++] = '{';
	first = true;
	while (depth > 0) {
		cf_agent__json_field *field = NULL;
		char close = stack[depth - 1] == '{' ? '}' : ']';

		skip_ws(&ps);
		if (ps.p >= ps.end)
			goto bad;
		if (*ps.p == close) {
			ps.p++;
			depth--;
			first = false;
			continue;
		}
		if (!first) {
			if (*ps.p != ',')
				goto bad;
			ps.p++;
			skip_ws(&ps);
			if (ps.p >= ps.end)
				goto bad;
		}
		first = false;
		if (stack[depth - 1] == '{') {
			if (*ps.p != '"')
				goto bad;
			rc = parse_string(&ps, &key, &key_len);
			if (rc != CF_AGENT_OK)
				goto bad;
			if (depth == 1)
				field = find_field(fields, n, key);
			free(key);
			key = NULL;
			skip_ws(&ps);
			if (ps.p >= ps.end || *ps.p != ':')
				goto bad;
			ps.p++;
			skip_ws(&ps);
			if (ps.p >= ps.end)
				goto bad;
		}
		if (*ps.p == '{' || *ps.p == '[') {
			if (field != NULL || depth == CF_AGENT_JSON_MAX_DEPTH)
				goto bad;
			stack[depth++] = (char)*ps.p;
			ps.p++;
			first = true;
			continue;
		}
		seen[31] = false; /* the slot of members nobody asked for */
		rc = scalar(&ps, field, field != NULL ? &seen[field - fields] : &seen[31]);
		if (rc != CF_AGENT_OK)
			goto bad;
	}
	skip_ws(&ps);
	if (ps.p != ps.end)
		goto bad;
	return CF_AGENT_OK;
bad:
	free(key);
	cf_agent__json_fields_clear(fields, n);
	if (rc == CF_AGENT_ENOMEM)
		return cf_agent__err_set(err, rc, NULL, "out of memory parsing JSON");
	return cf_agent__err_set(err, CF_AGENT_EINVAL, "BAD_JSON", "malformed JSON near byte %zu",
				 (size_t)(ps.p - (const unsigned char *)text));
}

/* ---- writer ------------------------------------------------------------ */

struct jbuf {
	char *buf;
	size_t len;
	size_t cap;
	bool failed;
};

static void
jb_put(struct jbuf *b, const char *s, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *nb;

		while (b->len + n + 1 > cap)
			cap *= 2;
		nb = realloc(b->buf, cap);
		if (nb == NULL) {
			b->failed = true;
			return;
		}
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

static void
jb_str(struct jbuf *b, const char *s)
{
	static const char hexd[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)s;

	jb_put(b, "\"", 1);
	for (; *u != '\0'; u++) {
		char esc[7];

		switch (*u) {
		case '"': jb_put(b, "\\\"", 2); break;
		case '\\': jb_put(b, "\\\\", 2); break;
		case '\n': jb_put(b, "\\n", 2); break;
		case '\r': jb_put(b, "\\r", 2); break;
		case '\t': jb_put(b, "\\t", 2); break;
		default:
			if (*u < 0x20) {
				esc[0] = '\\';
				esc[1] = 'u';
				esc[2] = '0';
				esc[3] = '0';
				esc[4] = hexd[*u >> 4];
				esc[5] = hexd[*u & 0xf];
				jb_put(b, esc, 6);
			} else {
				jb_put(b, (const char *)u, 1);
			}
		}
	}
	jb_put(b, "\"", 1);
}

int
cf_agent__json_object(char **out, size_t *len_out, ...)
{
	struct jbuf b = { NULL, 0, 0, false };
	const char *name, *value;
	bool any = false;
	va_list ap;

	*out = NULL;
	jb_put(&b, "{", 1);
	va_start(ap, len_out);
	for (;;) {
		name = va_arg(ap, const char *);
		if (name == NULL)
			break;
		value = va_arg(ap, const char *);
		if (value == NULL)
			continue;
		if (any)
			jb_put(&b, ",", 1);
		jb_str(&b, name);
		jb_put(&b, ":", 1);
		jb_str(&b, value);
		any = true;
	}
	va_end(ap);
	jb_put(&b, "}", 1);
	if (b.failed) {
		free(b.buf);
		return CF_AGENT_ENOMEM;
	}
	*out = b.buf;
	if (len_out != NULL)
		*len_out = b.len;
	return CF_AGENT_OK;
}
