"""Bounded counts for limit/offset lists (pages and API): COUNT(*) over 200,000 processes or
millions of audit rows costs more than the page itself, and nobody reads "page 1 of 4,000".

A list counts at most COUNT_CAP rows (`SELECT count(*) FROM (SELECT id … LIMIT n)`), or, for a
page further than that, up to the end of the page asked for (reaching it costs that much anyway),
plus one row to tell "exactly n" from "more than n". Past the bound the count says so (capped):
the web pager writes "page 1 of 200+ (10000+ rows)" and keeps its next link, the API answers
`count_capped: true` with `count` the bound and keeps its `next` link, so a client still pages to
the end."""
import math

from django.core.paginator import Page, Paginator
from django.db import connections

COUNT_CAP = 10_000
MAX_BOUND = 10**9  # PostgreSQL's LIMIT is a bigint; nobody pages this far


def bounded_count(queryset, bound):
    """(rows, capped): the number of rows of `queryset`, or (bound, True) when it has more than
    `bound`. One query, whose cost grows with min(rows, bound), not with the table."""
    if queryset.query.is_empty():
        return 0, False
    query = queryset.query
    if query.distinct_fields or query.group_by is not None or query.combinator:
        # DISTINCT ON needs its ordering, GROUP BY its columns, a UNION its parts: count them whole.
        rows = queryset[:bound + 1].count()
    else:
        # Only the key: the joins of select_related and the ordering are not needed to count.
        inner = queryset.order_by().values("pk")[:bound + 1]
        sql, params = inner.query.sql_with_params()
        with connections[queryset.db].cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM ({sql}) AS bounded", params)  # noqa: S608 (the ORM's SQL)
            rows = cursor.fetchone()[0]
    return (bound, True) if rows > bound else (rows, False)


DEFERRED_FROM = 1_000  # offsets from here read the page's keys first (page_rows)


def page_rows(queryset, offset, limit):
    """The rows of queryset[offset:offset + limit], as a list.

    A deep offset makes the database walk and throw away `offset` rows. Read whole, each of
    them is fetched from the table (90,000 audit rows with their JSON for a page of 50); so from
    DEFERRED_FROM on, the page's keys are read first (the walk is then over an index of the
    ordering's columns, without the rows) and the rows after, by key, in the same ordering."""
    if offset < DEFERRED_FROM or not hasattr(queryset, "query"):
        return list(queryset[offset:offset + limit])
    query = queryset.query
    if query.distinct_fields or query.group_by is not None or query.combinator or not queryset.ordered:
        return list(queryset[offset:offset + limit])
    keys = list(queryset.values_list("pk", flat=True)[offset:offset + limit])
    if not keys:
        return []
    return list(queryset.filter(pk__in=keys))


class CappedPage(Page):
    def has_next(self):
        # A capped count stops at or after this page's end: more rows follow it.
        return super().has_next() or (self.paginator.capped and self.number == self.paginator.num_pages)

    def next_page_number(self):
        return self.number + 1 if self.has_next() else super().next_page_number()


class CappedPaginator(Paginator):
    """A Paginator whose count is bounded (see the module): `capped` says there are more rows than
    `count`, and the last counted page still has a next page. `wanted` is the page number asked for,
    so that the bound reaches it."""

    def __init__(self, object_list, per_page, wanted=1, cap=None, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.bound = min(max(COUNT_CAP if cap is None else cap, wanted * per_page), MAX_BOUND)
        self.capped = False

    def _get_page(self, *args, **kwargs):
        return CappedPage(*args, **kwargs)

    def page(self, number):
        number = self.validate_number(number)
        offset = (number - 1) * self.per_page
        limit = self.per_page
        if offset + limit + self.orphans >= self.count:
            limit = self.count - offset  # the last page takes the orphans
        return self._get_page(page_rows(self.object_list, offset, limit), number, self)

    @property
    def count(self):
        if not hasattr(self, "_count"):
            if hasattr(self.object_list, "query"):
                self._count, self.capped = bounded_count(self.object_list, self.bound)
            else:
                self._count = len(self.object_list)
        return self._count

    @property
    def num_pages(self):
        if self.count == 0 and not self.allow_empty_first_page:
            return 0
        return max(1, math.ceil(self.count / self.per_page))


def wanted_page(raw):
    """The page number a `?page=` value asks for (1 when it is not a positive number)."""
    try:
        number = int(raw)
    except (TypeError, ValueError):
        return 1
    return number if number > 0 else 1
