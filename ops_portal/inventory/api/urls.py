from django.urls import path

from ops_portal.core.api.router import router

from . import views

router.register("credentials", views.CredentialViewSet)
router.register("host-groups", views.HostGroupViewSet)
router.register("hosts", views.HostViewSet)
router.register("sites", views.SiteViewSet)
router.register("artifacts", views.ArtifactViewSet)

urlpatterns = [
    path("inventory/import/", views.InventoryImportView.as_view(), name="inventory-import"),
    path("inventory/export/", views.InventoryExportView.as_view(), name="inventory-export"),
]
