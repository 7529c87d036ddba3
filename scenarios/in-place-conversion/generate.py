import json, os
OUT=os.path.dirname(os.path.abspath(__file__))
PS=4096
GPA=0x100000000
SRC='tools/testing/selftests/kvm/x86/guest_memfd_conversions_test.c'

def hx(b): return '%02x' % b
def ch(c): return ord(c) if isinstance(c,str) else c

class T:
    def __init__(s): s.steps=[]; s.vm=None; s.m='m'; s.g='g'
    def add(s, st):
        if s.vm and 'vm' not in st and st['op'] in ('run','create_guest_memfd','set_user_memory_region2'): st={**st,'vm':s.vm}
        s.steps.append(st)
    def setup(s, npages, flags, it=None):
        suffix = '' if it is None or it==0 else str(it)
        if suffix:
            s.vm='vm'+suffix; s.add({'op':'create_vm','type':'sw_protected','as':s.vm,'comment':f'a fresh VM for test_page {it} (the harness runs the body once per page, each with its own fixture)'})
        else:
            s.vm=None
        s.g='g'+suffix; s.m='m'+suffix
        c={'op':'create_guest_memfd','size':hex(npages*PS),'flags':flags,'as':s.g}
        if it is not None: c['comment']=f'test_page = {it}'
        s.add(c)
        s.add({'op':'mmap','fd':s.g,'offset':0,'length':hex(npages*PS),'prot':['read','write'],'flags':['shared'],'as':s.m})
        s.add({'op':'set_user_memory_region2','slot':1,'flags':['guest_memfd'],'guest_phys_addr':hex(GPA),'memory_size':hex(npages*PS),'userspace_addr':s.m,'guest_memfd':s.g,'guest_memfd_offset':0})
    def host_read(s,pg,val,m=None): s.add({'op':'host_read','map':m or s.m,'offset':hex(pg*PS),'length':1,'expect':{'hex':hx(ch(val))}})
    def host_write(s,pg,val,m=None): s.add({'op':'host_write','map':m or s.m,'offset':hex(pg*PS),'hex':hx(ch(val))})
    def host_rmw(s,pg,exp,w,m=None): s.host_read(pg,exp,m); s.host_write(pg,w,m)
    def guest_rmw(s,pg,exp,w):
        g=GPA+pg*PS
        s.add({'op':'run','vcpu':0,'program':[{'read':hex(g),'width':1},{'write':hex(g),'width':1,'value':hex(ch(w))},'hlt'],'expect':{'exit':'hlt','reads':[hex(ch(exp))]}})
    def test_private(s,pg,start,w):
        s.add({'op':'host_write','map':s.m,'offset':hex(pg*PS),'hex':hx(ch(w)),'expect':{'fault':'SIGBUS'}})
        s.guest_rmw(pg,start,w)
        s.add({'op':'host_read','map':s.m,'offset':hex(pg*PS),'length':1,'expect':{'fault':'SIGBUS'}})
    def test_shared(s,pg,start,hw,w):
        s.host_rmw(pg,start,hw); s.guest_rmw(pg,hw,w); s.host_read(pg,w)
    def convert(s,pg,n,private,expect=None):
        st={'op':'set_memory_attributes2','fd':s.g,'offset':hex(pg*PS),'size':hex(n*PS),'attributes':['private'] if private else []}
        if expect: st['expect']=expect
        s.add(st)
    def to_private(s,pg,start,w): s.convert(pg,1,True); s.test_private(pg,start,w)
    def to_shared(s,pg,start,hw,w): s.convert(pg,1,False); s.test_shared(pg,start,hw,w)
    def punch(s,pg,n): s.add({'op':'fallocate','fd':s.g,'mode':['keep_size','punch_hole'],'offset':hex(pg*PS),'length':hex(n*PS)})

def write(name, desc, t, commit):
    sc={'name':f'guest_memfd_conversions_test: {name}','description':desc+f' Expectations from {SRC} ({commit}); the model never supplied them.',
        'design':'inplace','requires':['vm_type:sw_protected','guest_memfd_flags:mmap','guest_memfd_flags:init_shared'],'vm':{'type':'sw_protected'},'steps':t.steps}
    with open(os.path.join(OUT,name+'.json'),'w') as f: json.dump(sc,f,indent=1); f.write('\n')

MM=['mmap']; MS=['mmap','init_shared']
t=T(); t.setup(1,MM); t.test_private(0,0,'A'); t.to_shared(0,'A','B','C'); t.to_private(0,'C','E')
write('init_private','TEST_F(gmem_conversions, init_private): a private page (flags MMAP) is unreachable by the host, converts to shared with its byte, and back.',t,'linux-next next-20260923, 492080a3d4e5')
t=T(); t.setup(1,MS); t.test_shared(0,0,'A','B'); t.to_private(0,'B','C'); t.to_shared(0,'C','D','E')
write('init_shared','TEST_F(gmem_conversions, init_shared): MMAP|INIT_SHARED starts shared; the byte survives both conversions.',t,'linux-next next-20260923, 492080a3d4e5')
t=T()
for tp in range(4):
    t.setup(4,MS,tp)
    c=lambda x,n:(x<<4)+n
    for i in (3,2,1,0): t.test_shared(i,0,c(i,0),c(i,2))
    t.to_private(tp,c(tp,2),c(tp,3))
    for i in range(4):
        if i==tp: t.test_private(i,c(tp,3),c(tp,4))
        else: t.test_shared(i,c(i,2),c(i,3),c(i,4))
    t.convert(tp,1,False); t.test_shared(tp,c(tp,4),c(tp,5),c(tp,6))
    for i in range(4): t.test_shared(i, c(tp,6) if i==tp else c(i,4), c(i,7), c(i,8))
write('indexing','GMEM_CONVERSION_MULTIPAGE_TEST_INIT_SHARED(indexing, 4): a conversion affects exactly the page it names (pages visited in descending order first, to catch "always page 0" bugs); once per test_page.',t,'linux-next next-20260923, 492080a3d4e5')
t=T(); t.setup(1,MS); t.to_private(0,0,'A')
write('before_allocation_shared','TEST_F(gmem_conversions, before_allocation_shared): converting to private before any folio exists is recorded; the guest then reads a zero page.',t,'linux-next next-20260923, 97137c140360')
t=T(); t.setup(1,MM); t.to_shared(0,0,'A','B')
write('before_allocation_private','TEST_F(gmem_conversions, before_allocation_private): converting to shared before any folio exists is recorded.',t,'linux-next next-20260923, 97137c140360')
t=T()
for tp in range(8):
    t.setup(8,MS,tp)
    t.host_rmw(tp,0,'A')
    if tp!=4: t.host_rmw(4,0,'A')
    t.convert(0,8,True)
    for i in range(8): t.test_private(i,'A' if i in (tp,4) else 0,'B')
    for i in range(8): t.to_shared(i,'B','C','D')
write('unallocated_folios','GMEM_CONVERSION_MULTIPAGE_TEST_INIT_SHARED(unallocated_folios, 8): one conversion over a range where only some pages have folios (test_page and page 4).',t,'LKP copy of the series (applied commit 5362c5fb88f6 not read)')
t=T(); t.setup(1,MS); t.host_rmw(0,0,'A'); t.punch(0,1); t.host_rmw(0,0,'A'); t.to_private(0,'A','B'); t.punch(0,1); t.test_private(0,0,'A')
write('truncate','TEST_F(gmem_conversions, truncate): "Truncation should not affect shared/private status": a punched shared page reads zero, a punched private page stays private and the guest sees a fresh zero page.',t,'LKP copy (applied commit bfb9b5a286ea not read)')
t=T(); t.setup(1,MS)
t.add({'op':'fork','map':'m','as':'child_m','comment':'fork() after the fixture: the child inherits the MAP_SHARED mapping of the guest_memfd'})
t.test_shared(0,0,0xA,0xB)
t.add({'op':'host_read','map':'child_m','offset':0,'length':1,'expect':{'hex':'0b'},'comment':'child, CHECK_SHARED: host rmw(0, 0xB -> 0xC) through its own page tables'})
t.add({'op':'host_write','map':'child_m','offset':0,'hex':'0c'})
t.to_private(0,0xC,0xD)
t.add({'op':'host_read','map':'child_m','offset':0,'length':1,'expect':{'fault':'SIGBUS'},'comment':'child, CHECK_PRIVATE: read -> SIGBUS (the conversion unmapped the page in every process)'})
t.add({'op':'host_write','map':'child_m','offset':0,'hex':'dd','expect':{'fault':'SIGBUS'},'comment':'child: write 0xdd -> SIGBUS; then exit(0)'})
write('forked_accesses','TEST_F(gmem_conversions, forked_accesses): a forked child maps the shared page; after conversion to private its accesses get SIGBUS too.',t,'LKP copy (applied commit 8b72eaa766b6 not read)')
t=T()
for tp in range(4):
    t.setup(4,MS,tp)
    pin='pin'+('' if tp==0 else str(tp))
    t.add({'op':'pin_user_pages','map':t.m,'offset':hex(tp*PS),'length':hex(PS),'as':pin,'comment':'pin_pages(): gup_test PIN_LONGTERM_TEST_START with FOLL_WRITE'})
    for i in range(4): t.test_shared(i,0,'A','B')
    t.convert(0,4,True,{'errno':'EAGAIN','error_offset':hex(tp*PS)})
    for i in range(4):
        if i==tp: t.convert(i,1,True,{'errno':'EAGAIN','error_offset':hex(tp*PS)})
        else: t.to_private(i,'B','C')
    t.add({'op':'munmap','map':pin,'comment':'unpin_pages(): PIN_LONGTERM_TEST_STOP'})
    t.convert(0,4,True)
    for i in range(4): t.test_private(i,'B' if i==tp else 'C','D')
write('elevated_refcount','GMEM_CONVERSION_MULTIPAGE_TEST_INIT_SHARED(elevated_refcount, 4): a pinned page fails the conversion of any range holding it with EAGAIN and error_offset at the page (all or nothing); after unpinning the whole range converts.',t,'v8 patch 39/46 with the gup_test pin helpers (applied 0db3f14f40c4, e8a40b9a604e: subjects only)')
