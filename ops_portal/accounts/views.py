from django.contrib import messages
from django.contrib.auth import get_user_model, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from ops_portal.core.web import actor, attempt, confirm_delete, form_page, require_manage

from . import services
from .choices import ROLE_ACTIONS, Action
from .forms import (
    BindingEditForm,
    BindingForm,
    EnvironmentForm,
    TeamForm,
    ThrottledAuthenticationForm,
    TokenForm,
    UserCreateForm,
)
from .models import APIToken, Environment, RoleBinding, Team
from .permissions import has_any, restrict, scope_for

User = get_user_model()


class LoginView(auth_views.LoginView):
    authentication_form = ThrottledAuthenticationForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"

    def form_valid(self, form):
        # Through the service, so the change is audited.
        services.change_own_password(actor(self.request), self.request.user, form.cleaned_data["old_password"],
                                     form.cleaned_data["new_password1"])
        update_session_auth_hash(self.request, self.request.user)
        messages.success(self.request, "Your password was changed.")
        return redirect("dashboard:home")


def _require_manage_somewhere(user):
    if not has_any(user, Action.MANAGE):
        raise PermissionDenied("Only administrators manage access.")


@login_required
@require_http_methods(["GET", "POST"])
def access(request):
    """Users, role bindings, teams and environments, for administrators."""
    user = request.user
    _require_manage_somewhere(user)
    global_admin = scope_for(user, Action.MANAGE).everywhere
    manageable_envs = restrict(Environment.objects.all(), user, Action.MANAGE)
    binding_form = BindingForm(environments=manageable_envs, allow_all=global_admin, prefix="binding")
    user_form = UserCreateForm(prefix="user")
    env_form = EnvironmentForm(prefix="env")
    if request.method == "POST":
        kind = request.POST.get("form")
        if kind == "binding":
            binding_form = BindingForm(request.POST, environments=manageable_envs, allow_all=global_admin,
                                       prefix="binding")
            if binding_form.is_valid():
                data = binding_form.cleaned_data
                if attempt(request, services.create_binding, actor(request), role=data["role"],
                           environment=data["environment"], form=binding_form, success="Role binding added.",
                           **data["subject"]):
                    return redirect("access")
        elif kind == "user" and global_admin:
            user_form = UserCreateForm(request.POST, prefix="user")
            if user_form.is_valid():
                data = user_form.cleaned_data
                if attempt(request, services.create_user, actor(request), username=data["username"],
                           email=data["email"], password=data["password"] or None, form=user_form,
                           success=f"User {data['username']} created."):
                    return redirect("access")
        elif kind == "environment" and global_admin:
            env_form = EnvironmentForm(request.POST, prefix="env")
            if env_form.is_valid():
                if attempt(request, services.create_environment, actor(request), form=env_form,
                           success="Environment created.", **env_form.cleaned_data):
                    return redirect("access")
    context = {
        "global_admin": global_admin,
        "bindings": restrict(RoleBinding.objects.select_related("user", "team", "environment"), user,
                             Action.MANAGE),
        "users": User.objects.order_by("username") if global_admin else None,
        "teams": Team.objects.prefetch_related("members") if global_admin else None,
        "environments": restrict(Environment.objects.all(), user, Action.VIEW),
        "binding_form": binding_form,
        "user_form": user_form,
        "env_form": env_form,
        "role_actions": {role: sorted(actions) for role, actions in ROLE_ACTIONS.items()},
    }
    return render(request, "accounts/access.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def edit_binding(request, pk):
    binding = get_object_or_404(restrict(RoleBinding.objects.select_related("user", "team", "environment"),
                                         request.user, Action.MANAGE), pk=pk)
    user = request.user
    form = BindingEditForm(request.POST or None, initial={"role": binding.role, "environment": binding.environment_id},
                           environments=restrict(Environment.objects.all(), user, Action.MANAGE),
                           allow_all=scope_for(user, Action.MANAGE).everywhere)
    who = f"user {binding.user.username}" if binding.user_id else f"team {binding.team.name}"
    return form_page(request, form, services.update_binding, obj=binding, what="role binding",
                     back=reverse("access"), done=reverse("access"),
                     intro=f"The role of {who}. You may change it only to a role you may grant, in an environment "
                           "you manage; another user or team is another binding.",
                     delete_url=reverse("delete_binding", args=[binding.pk]))


@login_required
@require_http_methods(["GET", "POST"])
def delete_binding(request, pk):
    binding = get_object_or_404(restrict(RoleBinding.objects.select_related("user", "team", "environment"),
                                         request.user, Action.MANAGE), pk=pk)
    who = f"user {binding.user.username}" if binding.user_id else f"team {binding.team.name}"
    members = list(binding.team.members.values_list("username", flat=True)) if binding.team_id else []
    where = binding.environment.name if binding.environment_id else "all environments"
    consequences = [f"the {binding.role} role of {who} in {where}"]
    if members:
        consequences.append(f"that role for the team's members: {', '.join(members)}")
    return confirm_delete(request, binding, services.delete_binding, what="role binding", consequences=consequences,
                          done=reverse("access"), back=reverse("access"))


def _require_global_admin(user):
    # Teams are global objects: require_manage(user, team) asks for manage in all environments.
    require_manage(user, Team())


def _team_page(request, team=None):
    _require_global_admin(request.user)
    initial = {"name": team.name, "description": team.description,
               "members": list(team.members.values_list("pk", flat=True))} if team is not None else {}
    form = TeamForm(request.POST or None, initial=initial)
    save = services.create_team if team is None else services.update_team
    return form_page(request, form, save, obj=team, what="team", back=reverse("access") + "#teams",
                     done=reverse("access") + "#teams",
                     intro="Members hold every role binding of the team. Changing who is in it is granting or "
                           "removing those roles: only administrators who hold them may.",
                     delete_url=reverse("team_delete", args=[team.pk]) if team else None)


@login_required
@require_http_methods(["GET", "POST"])
def team_new(request):
    return _team_page(request)


@login_required
@require_http_methods(["GET", "POST"])
def team_edit(request, pk):
    _require_global_admin(request.user)
    return _team_page(request, get_object_or_404(Team, pk=pk))


@login_required
@require_http_methods(["GET", "POST"])
def team_delete(request, pk):
    _require_global_admin(request.user)
    team = get_object_or_404(Team, pk=pk)
    consequences = [f"its role binding: {b.role} in {b.environment.name if b.environment_id else 'all environments'}"
                    for b in team.role_bindings.select_related("environment")]
    members = list(team.members.values_list("username", flat=True))
    if members:
        consequences.append(f"those roles for its members: {', '.join(members)}")
    return confirm_delete(request, team, services.delete_team, what="team", consequences=consequences,
                          done=reverse("access") + "#teams", back=reverse("access") + "#teams")


@login_required
@require_POST
def toggle_user(request, pk):
    target = get_object_or_404(User, pk=pk)
    if target.pk == request.user.pk:
        messages.error(request, "You cannot deactivate yourself.")
        return redirect("access")
    attempt(request, services.update_user, actor(request), target, is_active=not target.is_active,
            success=f"User {target.username} {'deactivated' if target.is_active else 'activated'}.")
    return redirect("access")


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request):
    form = TokenForm()
    new_key = None
    if request.method == "POST":
        form = TokenForm(request.POST)
        if form.is_valid():
            result = attempt(request, services.create_token, actor(request), form=form, **form.cleaned_data)
            if result:
                new_key = result[1]
                form = TokenForm()
    context = {"tokens": APIToken.objects.filter(user=request.user), "form": form, "new_key": new_key}
    return render(request, "accounts/tokens.html", context)


@login_required
@require_POST
def revoke_token(request, pk):
    token = get_object_or_404(APIToken, pk=pk, user=request.user)
    attempt(request, services.revoke_token, actor(request), token, success="Token revoked.")
    return redirect("tokens")
