from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from ops_portal.core.admin import register_read_only

from .forms import ThrottledAdminAuthenticationForm
from .models import APIToken, Environment, RoleBinding, Team

# The admin's sign-in page shares the portal's throttle (in the authentication backend) and says so.
admin.site.login_form = ThrottledAdminAuthenticationForm

# People and rights are managed on the Access page and the API, where every change is audited.
admin.site.unregister(get_user_model())
admin.site.unregister(Group)
register_read_only(get_user_model(), Environment, Team, RoleBinding, APIToken)
