"""Every list is paginated: ``?page=N`` (and ``?page_size=`` up to ``MAX_PAGE_SIZE``)."""

from django.conf import settings
from rest_framework.pagination import PageNumberPagination

MAX_PAGE_SIZE = 200


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request):
        self.page_size = settings.API_PAGE_SIZE
        return super().get_page_size(request)
