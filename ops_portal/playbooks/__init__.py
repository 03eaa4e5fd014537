"""Ansible playbooks of projects as jobs (ansible.playbook), run through ansible-runner on the
worker against the job's hosts, with the portal's inventory as Ansible's."""
