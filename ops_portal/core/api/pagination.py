from rest_framework.pagination import LimitOffsetPagination


class Pagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 1000
    max_offset = 10**9  # PostgreSQL's OFFSET is a bigint; nobody pages this far

    def get_offset(self, request):
        return min(super().get_offset(request), self.max_offset)
