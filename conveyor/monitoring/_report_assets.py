"""The CSS and JavaScript inlined into every HTML report (:mod:`conveyor.monitoring.report`).

Kept apart from the renderer so that the Python reads as the page's structure. The script
never puts report data into markup: column names and categories come from user data, so
it builds nodes and sets ``textContent`` only. The page's Content-Security-Policy allows
exactly these two blocks (by their SHA-256), so even a slip in escaping could not run code.
"""

from __future__ import annotations

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2330}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#5b6475;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{border:1px solid #d8dce4;border-radius:6px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px}.card .l{color:#5b6475;font-size:12px}
.bad{color:#b3261e}.ok{color:#1b7f3b}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e6e8ee;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f6f9;position:sticky;top:0}
td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.drifted td{background:#fdecea}
tr.chart td{background:#fafbfc}
button.x{border:0;background:none;cursor:pointer;font-size:12px;padding:0 4px}
.tools{margin:8px 0;display:flex;gap:16px;align-items:center}
ul.names{columns:3;font-size:13px}
svg text{font-size:10px;fill:#3a4254}
.legend{font-size:12px;color:#5b6475}.ref{color:#5877b7}.cur{color:#e07b22}
"""

SCRIPT = """
(function(){
var D=JSON.parse(document.getElementById('report-data').textContent);
var NS='http://www.w3.org/2000/svg';
function el(tag,attrs,text){var e=document.createElementNS(NS,tag);
 for(var k in attrs){e.setAttribute(k,attrs[k]);} if(text!==undefined){e.textContent=text;} return e;}
function num(v,kind){
 if(kind==='datetime'){return new Date(v*1000).toISOString().slice(0,19).replace('T',' ');}
 return String(parseFloat(Number(v).toPrecision(4)));}
function labels(c){var kind=c[1],bk=c[2],v=c[3],out=[],i;
 if(bk==='edges'){out.push('\\u2264 '+num(v[0],kind));
  for(i=1;i<v.length;i++){out.push('('+num(v[i-1],kind)+', '+num(v[i],kind)+']');}
  out.push('> '+num(v[v.length-1],kind));return out;}
 for(i=0;i<v.length;i++){out.push(bk==='levels'?num(v[i],kind):String(v[i]));}
 out.push('other');return out;}
function share(counts){var t=0,i;for(i=0;i<counts.length;i++){t+=counts[i];}
 return counts.map(function(x){return t?x/t:0;});}
function chart(c){var names=labels(c),r=share(c[4]),k=share(c[5]),n=names.length;
 var bw=Math.max(6,Math.min(28,Math.floor(560/n/2))),W=60+n*(2*bw+6),H=230,top=10,h=130;
 var svg=el('svg',{width:W,height:H,viewBox:'0 0 '+W+' '+H,role:'img'});
 var m=Math.max.apply(null,r.concat(k).concat([1e-9]));
 svg.appendChild(el('text',{x:0,y:top+8},(100*m).toFixed(1)+'%'));
 svg.appendChild(el('line',{x1:54,y1:top+h,x2:W,y2:top+h,stroke:'#9aa3b5'}));
 for(var i=0;i<n;i++){var x=60+i*(2*bw+6),rh=h*r[i]/m,ch=h*k[i]/m;
  var tip=names[i]+': reference '+(100*r[i]).toFixed(2)+'% ('+c[4][i]+'), current '+
   (100*k[i]).toFixed(2)+'% ('+c[5][i]+')';
  var g=el('g',{});g.appendChild(el('title',{},tip));
  g.appendChild(el('rect',{x:x,y:top+h-rh,width:bw,height:rh,fill:'#5877b7'}));
  g.appendChild(el('rect',{x:x+bw,y:top+h-ch,width:bw,height:ch,fill:'#e07b22'}));
  var label=names[i].length>18?names[i].slice(0,17)+'\\u2026':names[i];
  var tx=x+bw,ty=top+h+12;
  g.appendChild(el('text',{x:tx,y:ty,'text-anchor':'end',transform:'rotate(-40 '+tx+' '+ty+')'},label));
  svg.appendChild(g);}
 return svg;}
function toggle(row){var b=row.querySelector('button.x'),next=row.nextElementSibling;
 if(next&&next.classList.contains('chart')){next.remove();b.textContent='\\u25b8';
  b.setAttribute('aria-expanded','false');return;}
 var c=D.columns[row.getAttribute('data-i')],tr=document.createElement('tr'),td=document.createElement('td');
 tr.className='chart';td.colSpan=row.children.length;
 var legend=document.createElement('div');legend.className='legend';
 var a=document.createElement('span');a.className='ref';a.textContent='\\u25a0 reference ';
 var z=document.createElement('span');z.className='cur';z.textContent='\\u25a0 current ';
 legend.appendChild(a);legend.appendChild(z);
 legend.appendChild(document.createTextNode('share of values per reference bin, '+c[0]));
 td.appendChild(legend);td.appendChild(chart(c));tr.appendChild(td);row.after(tr);
 b.textContent='\\u25be';b.setAttribute('aria-expanded','true');}
document.getElementById('drift-body').addEventListener('click',function(ev){
 var b=ev.target.closest('button.x');if(b){toggle(b.closest('tr'));}});
var q=document.getElementById('filter'),only=document.getElementById('only-drifted');
function apply(){var text=q.value.toLowerCase(),rows=document.querySelectorAll('tr[data-name]');
 for(var i=0;i<rows.length;i++){var r=rows[i],hide=r.getAttribute('data-name').toLowerCase().indexOf(text)<0
  ||(only.checked&&r.getAttribute('data-drifted')!=='1');r.hidden=hide;
  var next=r.nextElementSibling;if(next&&next.classList.contains('chart')){next.hidden=hide;}}}
q.addEventListener('input',apply);only.addEventListener('change',apply);
})();
"""
